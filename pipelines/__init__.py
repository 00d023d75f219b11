"""The Dagster code location (`pipelines.definitions`)."""

import warnings

from dagster import BetaWarning

# Dagster's own @sensor passes `owners=None` to a beta parameter and warns in every
# process that loads the definitions; the warning is about Dagster, not this code.
warnings.filterwarnings("ignore", message=r"Parameter `owners` of initializer",
                        category=BetaWarning)
