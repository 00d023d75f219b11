"""The access bundle's words in the subject's language, and readable field names.

The bundle's `index.html` is what the subject reads (art. 12(1): concise, intelligible,
plain language), so it speaks their language and says "E-mail address" where the
vendor says `email_address` or `EmailAddress`. `data.json` and the CSVs keep the
vendors' own names: they are the portable copy (art. 20), read by machines.
"""

from __future__ import annotations

import re

TEXT = {
    "en": {
        "title": "Your data: request {id}",
        "heading": "The data we hold about you",
        "intro": "Request {id}, gathered {at} UTC directly from each system.",
        "basis": "Legal basis", "retention": "Retention",
        "retention_text": "{years} years after the end of the financial year of the last "
                          "entry ({basis})",
        "kept": "Kept by law", "kept_text": "record {record} is kept under {basis} until "
                                            "{until}{after}.",
        "after": " (since erasure request {id})",
        "nothing_else": "Nothing else about you is held in this system.",
        "nothing": "Nothing about you is held in this system.",
        "source": "source",
        "special": "Special categories of data (GDPR art. 9): {names}. This part may tell "
                   "about your health, beliefs or similar; we keep it with extra care.",
        "complaint": "You may complain to the Data Protection Ombudsman "
                     "(Tietosuojavaltuutetun toimisto, tietosuoja.fi).",
    },
    "fi": {
        "title": "Tietosi: pyyntö {id}",
        "heading": "Tiedot, joita meillä on sinusta",
        "intro": "Pyyntö {id}, koottu {at} UTC suoraan kustakin järjestelmästä.",
        "basis": "Oikeusperuste", "retention": "Säilytysaika",
        "retention_text": "{years} vuotta viimeisen kirjauksen tilikauden päättymisestä "
                          "({basis})",
        "kept": "Säilytetään lain nojalla", "kept_text": "tietue {record} säilytetään "
                                                         "perusteella {basis} {until} asti"
                                                         "{after}.",
        "after": " (poistopyynnöstä {id} lähtien)",
        "nothing_else": "Muita tietoja sinusta ei ole tässä järjestelmässä.",
        "nothing": "Tässä järjestelmässä ei ole tietoja sinusta.",
        "source": "lähde",
        "special": "Erityisiä henkilötietoryhmiä (EU:n tietosuoja-asetus, 9 artikla): "
                   "{names}. Tämä osa voi kertoa terveydestäsi, vakaumuksestasi tai "
                   "vastaavasta; käsittelemme sitä erityisen huolellisesti.",
        "complaint": "Voit tehdä valituksen tietosuojavaltuutetulle "
                     "(Tietosuojavaltuutetun toimisto, tietosuoja.fi).",
    },
    "sv": {
        "title": "Dina uppgifter: begäran {id}",
        "heading": "Uppgifterna vi har om dig",
        "intro": "Begäran {id}, insamlad {at} UTC direkt från varje system.",
        "basis": "Rättslig grund", "retention": "Lagringstid",
        "retention_text": "{years} år från utgången av räkenskapsperioden för den sista "
                          "posten ({basis})",
        "kept": "Sparas enligt lag", "kept_text": "posten {record} sparas med stöd av "
                                                  "{basis} till och med {until}{after}.",
        "after": " (sedan raderingsbegäran {id})",
        "nothing_else": "Inga andra uppgifter om dig finns i detta system.",
        "nothing": "Inga uppgifter om dig finns i detta system.",
        "source": "källa",
        "special": "Särskilda kategorier av personuppgifter (dataskyddsförordningen, "
                   "artikel 9): {names}. Denna del kan berätta om din hälsa, övertygelse "
                   "eller liknande; vi behandlar den med särskild omsorg.",
        "complaint": "Du kan lämna in ett klagomål till dataombudsmannen "
                     "(Dataombudsmannens byrå, tietosuoja.fi).",
    },
}

# Field names the vendors use, by their normalised form (lower case, no separators).
FIELDS = {
    "id": ("Identifier", "Tunniste", "Identifierare"),
    "name": ("Name", "Nimi", "Namn"),
    "fullname": ("Name", "Nimi", "Namn"),
    "firstname": ("First name", "Etunimi", "Förnamn"),
    "fname": ("First name", "Etunimi", "Förnamn"),
    "lastname": ("Last name", "Sukunimi", "Efternamn"),
    "lname": ("Last name", "Sukunimi", "Efternamn"),
    "email": ("E-mail address", "Sähköpostiosoite", "E-postadress"),
    "emails": ("E-mail addresses", "Sähköpostiosoitteet", "E-postadresser"),
    "emailaddress": ("E-mail address", "Sähköpostiosoite", "E-postadress"),
    "phone": ("Phone", "Puhelin", "Telefon"),
    "phones": ("Phone numbers", "Puhelinnumerot", "Telefonnummer"),
    "phonenumber": ("Phone", "Puhelin", "Telefon"),
    "address": ("Address", "Osoite", "Adress"),
    "streetaddress": ("Street address", "Katuosoite", "Gatuadress"),
    "postnumber": ("Postcode", "Postinumero", "Postnummer"),
    "city": ("Town", "Postitoimipaikka", "Postanstalt"),
    "country": ("Country", "Maa", "Land"),
    "orgname": ("Organisation", "Organisaatio", "Organisation"),
    "organization": ("Organisation", "Organisaatio", "Organisation"),
    "value": ("Value", "Arvo", "Värde"),
    "primary": ("Primary", "Ensisijainen", "Primär"),
    "label": ("Type", "Tyyppi", "Typ"),
    "status": ("Status", "Tila", "Status"),
    "addtime": ("Added", "Lisätty", "Tillagd"),
    "updatetime": ("Updated", "Päivitetty", "Uppdaterad"),
    "createdat": ("Created", "Luotu", "Skapad"),
    "updatedat": ("Updated", "Päivitetty", "Uppdaterad"),
    "lastchanged": ("Last changed", "Muutettu viimeksi", "Senast ändrad"),
    "timestampsignup": ("Signed up", "Liittynyt", "Registrerad"),
    "timestampopt": ("Consent given", "Suostumus annettu", "Samtycke givet"),
    "ipsignup": ("IP address at sign-up", "IP-osoite liittyessä",
                 "IP-adress vid registrering"),
    "ipopt": ("IP address at consent", "IP-osoite suostumuksessa",
              "IP-adress vid samtycke"),
    "language": ("Language", "Kieli", "Språk"),
    "tags": ("Tags", "Tunnisteet", "Taggar"),
    "interests": ("Interests", "Kiinnostuksen kohteet", "Intressen"),
    "mergefields": ("Your details", "Tietosi", "Dina uppgifter"),
    "marketingpermissions": ("Marketing permissions", "Markkinointiluvat",
                             "Marknadsföringstillstånd"),
    "answers": ("Answers", "Vastaukset", "Svar"),
    "submittedat": ("Submitted", "Lähetetty", "Skickat"),
    "landedat": ("Opened", "Avattu", "Öppnat"),
    "content": ("Content", "Sisältö", "Innehåll"),
    "subject": ("Subject", "Aihe", "Ämne"),
    "note": ("Note", "Muistiinpano", "Anteckning"),
    "title": ("Title", "Otsikko", "Rubrik"),
    "customercode": ("Customer number", "Asiakasnumero", "Kundnummer"),
    "invoicenumber": ("Invoice number", "Laskun numero", "Fakturanummer"),
    "invoicedate": ("Invoice date", "Laskun päivämäärä", "Fakturadatum"),
    "amount": ("Amount", "Summa", "Belopp"),
    "netvisorkey": ("Identifier", "Tunniste", "Identifierare"),
}
_LANGS = {"en": 0, "fi": 1, "sv": 2}


def text(language: str) -> dict[str, str]:
    return TEXT.get(language, TEXT["en"])


def field(name: str, language: str) -> str:
    """A vendor's field name as the subject reads it; humanised when not in the list."""
    key = re.sub(r"[^a-z0-9]", "", name.lower())
    known = FIELDS.get(key)
    if known is not None:
        return known[_LANGS.get(language, 0)]
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).replace("_", " ").split()
    return " ".join(words).capitalize() if words else name
