"""The privacy desk: the ops staff's web page (Starlette + Jinja2, server-rendered).

Imports hub only (DESIGN.md, Layers): a verified request is picked up by the sensor,
so the desk never talks to Dagster or the vendors.
"""
