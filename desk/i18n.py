"""The desk's words in Finnish and English: one small catalogue, one entry per phrase.

The language is the user's own setting, else the browser's Accept-Language, else
Finnish (the company's). Messages from the hub itself (why a request cannot be
extended, say) are the hub's English sentences, one wording each, shared with the CLI;
`hub_error` words the ones an operator meets on the desk in Finnish, by pattern, and
shows any other as it is (English beats nothing).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from starlette.requests import Request

LANGUAGES = ("fi", "en")
DEFAULT = "fi"

# key: (English, Finnish)
_CATALOGUE: dict[str, tuple[str, str]] = {
    "desk": ("Privacy desk", "Tietosuojapalvelu"),
    "skip": ("Skip to content", "Siirry sisältöön"),
    "dashboard": ("Dashboard", "Yleisnäkymä"),
    "new_request": ("File a request", "Kirjaa pyyntö"),
    "search": ("Search", "Haku"),
    "audit": ("Audit trail", "Lokitapahtumat"),
    "users": ("Users", "Käyttäjät"),
    "logout": ("Log out", "Kirjaudu ulos"),
    "signed_in_as": ("Signed in as", "Kirjautuneena"),
    "language": ("Language", "Kieli"),
    "change": ("Change", "Vaihda"),
    "login": ("Log in", "Kirjaudu"),
    "user_name": ("User name", "Käyttäjätunnus"),
    "password": ("Password", "Salasana"),
    "password_again": ("Password again", "Salasana uudelleen"),
    "login_failed": ("Wrong user name or password.", "Väärä käyttäjätunnus tai salasana."),
    "login_locked": ("Too many failed logins: this user is locked until {until}.",
                     "Liian monta epäonnistunutta kirjautumista: tunnus on lukittu "
                     "{until} asti."),
    "forbidden": ("Your role does not allow this.", "Roolisi ei salli tätä."),
    "csrf_refused": ("The form had expired or did not come from this desk. Reload the page "
                     "and try again.",
                     "Lomake oli vanhentunut tai se ei tullut tästä palvelusta. Lataa sivu "
                     "uudelleen ja yritä uudestaan."),
    "not_found": ("Not found.", "Ei löytynyt."),
    "open_requests": ("Open requests", "Avoimet pyynnöt"),
    "due_soon": ("Due within {days} days", "Määräaika {days} päivän sisällä"),
    "overdue": ("Overdue", "Myöhässä"),
    "failed_tasks": ("Failed tasks", "Epäonnistuneet tehtävät"),
    "candidates_waiting": ("Candidate records to review", "Tarkistettavat ehdokastietueet"),
    "manual_waiting": ("Manual tasks waiting", "Odottavat käsin tehtävät"),
    "none": ("None.", "Ei yhtään."),
    "request": ("Request", "Pyyntö"),
    "kind": ("Kind", "Laji"),
    "state": ("State", "Tila"),
    "due": ("Due", "Määräpäivä"),
    "days_left": ("{days} d left", "{days} pv jäljellä"),
    "days_over": ("{days} d overdue", "{days} pv myöhässä"),
    "due_today": ("due today", "erääntyy tänään"),
    "subject": ("Subject", "Rekisteröity"),
    "system": ("System", "Järjestelmä"),
    "error": ("Error", "Virhe"),
    "count": ("Count", "Määrä"),
    "kind_access": ("Access (copy of the data)", "Tarkastus (kopio tiedoista)"),
    "kind_erasure": ("Erasure", "Poisto"),
    "kind_opt_out": ("Opt-out of direct marketing", "Suoramarkkinointikielto"),
    "kind_rectification": ("Rectification", "Oikaisu"),
    "kind_restriction": ("Restriction of processing", "Käsittelyn rajoittaminen"),
    "kind_restriction_lift": ("Lifting a restriction", "Rajoituksen poisto"),
    "emails": ("E-mail addresses (one a line)", "Sähköpostiosoitteet (yksi riville)"),
    "phones": ("Phone numbers (one a line)", "Puhelinnumerot (yksi riville)"),
    "name": ("Name", "Nimi"),
    "channel": ("How it arrived", "Miten saapui"),
    "channel_email": ("E-mail", "Sähköposti"),
    "channel_letter": ("Letter", "Kirje"),
    "channel_phone": ("Phone", "Puhelin"),
    "channel_desk": ("In person or own form", "Henkilökohtaisesti tai oma lomake"),
    "channel_web": ("Web", "Verkko"),
    "received": ("Received on (the real date it arrived)", "Saapumispäivä (todellinen)"),
    "received_hint": ("YYYY-MM-DD or YYYY-MM-DD HH:MM; empty: now. The month to answer "
                      "counts from it.",
                      "VVVV-KK-PP tai VVVV-KK-PP HH:MM; tyhjä: nyt. Vastausaika lasketaan "
                      "tästä."),
    "subject_language": ("The subject's language", "Rekisteröidyn kieli"),
    "lang_fi": ("Finnish", "suomi"),
    "lang_sv": ("Swedish", "ruotsi"),
    "lang_en": ("English", "englanti"),
    "corrected": ("Corrected values (a rectification only)",
                  "Korjatut tiedot (vain oikaisupyyntö)"),
    "corrected_hint": ("What the subject says is right; each system holding the field is "
                       "told. Leave empty what stays as it is.",
                       "Rekisteröidyn ilmoittamat oikeat tiedot; ne välitetään jokaiseen "
                       "järjestelmään, jossa tieto on. Jätä tyhjäksi se, mikä ei muutu."),
    "set_email": ("Corrected e-mail address", "Korjattu sähköpostiosoite"),
    "set_phone": ("Corrected phone number", "Korjattu puhelinnumero"),
    "set_name": ("Corrected name", "Korjattu nimi"),
    "set_address": ("Corrected address (street, postcode city)",
                    "Korjattu osoite (katuosoite, postinumero toimipaikka)"),
    "file": ("File the request", "Kirjaa pyyntö"),
    "duplicate_warning": ("This subject already has an open request of this kind: {ids}.",
                          "Rekisteröidyllä on jo avoin samanlainen pyyntö: {ids}."),
    "allow_duplicate": ("File another one anyway", "Kirjaa silti uusi"),
    "chargeable": ("Access request number {number} from this subject this year: only the "
                   "first each year is free. Decide whether to charge.",
                   "Rekisteröidyn {number}. tarkastuspyyntö tänä vuonna: vain ensimmäinen "
                   "on maksuton. Päätä, peritäänkö maksu."),
    "chargeable_flag": ("A repeated access request this year: only the first each year is "
                        "free. Decide whether to charge.",
                        "Toistuva tarkastuspyyntö tänä vuonna: vain ensimmäinen on maksuton. "
                        "Päätä, peritäänkö maksu."),
    "filed": ("Request filed.", "Pyyntö kirjattu."),
    "received_at": ("Received", "Saapui"),
    "answer_in": ("Answer in", "Vastauskieli"),
    "extended_because": ("extended: {reason}", "jatkettu: {reason}"),
    "identifiers": ("Identifiers", "Tunnisteet"),
    "scrubbed": ("(removed when the request settled; only keyed hashes remain)",
                 "(poistettu pyynnön valmistuttua; vain avainnetut tiivisteet jäljellä)"),
    "verify": ("Verify the identity", "Vahvista henkilöllisyys"),
    "verify_method": ("How the identity was checked", "Miten henkilöllisyys tarkistettiin"),
    "method_replied_from_address": ("Replied from the registered address",
                                    "Vastasi rekisterissä olevasta osoitteesta"),
    "method_id_at_desk": ("ID checked at the desk", "Henkilöllisyystodistus tarkistettu"),
    "method_signed_letter": ("Signed letter", "Allekirjoitettu kirje"),
    "method_known_phone": ("Called back at the registered number",
                           "Soitettu takaisin rekisterissä olevaan numeroon"),
    "verified": ("Identity verified: the request runs next.",
                 "Henkilöllisyys vahvistettu: pyyntö käynnistyy seuraavaksi."),
    "tasks": ("Systems", "Järjestelmät"),
    "action": ("Action", "Toimenpide"),
    "evidence": ("Evidence", "Näyttö"),
    "attempts": ("Tries", "Yrityksiä"),
    "dagster_runs": ("Runs in Dagster", "Ajot Dagsterissa"),
    "no_tasks": ("No system has been asked yet: the request runs once its identity is "
                 "verified.",
                 "Järjestelmiin ei ole vielä oltu yhteydessä: pyyntö käynnistyy, kun "
                 "henkilöllisyys on vahvistettu."),
    "candidates": ("Candidate records", "Ehdokastietueet"),
    "candidates_help": ("Reached through the index or an identifier someone else shares: "
                        "act on a record only if it is the subject's.",
                        "Löytyi henkilöhakemiston tai jonkun toisen kanssa jaetun tunnisteen "
                        "kautta: käsittele vain, jos tietue on rekisteröidyn."),
    "record": ("Record", "Tietue"),
    "why": ("Why it matched", "Miksi löytyi"),
    "decision": ("Decision", "Päätös"),
    "approve": ("Approve", "Hyväksy"),
    "exclude": ("Exclude", "Rajaa pois"),
    "decided_by": ("by {who}", "päätti {who}"),
    "manual_tasks": ("To do by hand", "Käsin tehtävät"),
    "confirm": ("Confirm", "Kuittaa"),
    "outcome": ("Outcome", "Lopputulos"),
    "outcome_done": ("Done", "Tehty"),
    "outcome_not_found": ("Nothing found", "Ei löytynyt"),
    "outcome_retained": ("Retained by law", "Säilytetään lain nojalla"),
    "note": ("Note: what was done", "Huomautus: mitä tehtiin"),
    "until": ("Retained until (YYYY-MM-DD)", "Säilytetään asti (VVVV-KK-PP)"),
    "basis": ("Legal basis of the hold", "Säilyttämisen oikeusperuste"),
    "manual_due": ("by {due}", "viimeistään {due}"),
    "extend": ("Extend the deadline", "Jatka määräaikaa"),
    "months": ("Months", "Kuukautta"),
    "reason": ("Reason (told to the subject)", "Syy (kerrotaan rekisteröidylle)"),
    "reject": ("Reject the request", "Hylkää pyyntö"),
    "bundle": ("Export bundle", "Tietopaketti"),
    "letters": ("Letters to the subject", "Kirjeet rekisteröidylle"),
    "letter_kind": ("Letter", "Kirje"),
    "letter_channel": ("By", "Tapa"),
    "letter_to": ("To", "Vastaanottaja"),
    "letter_state": ("State", "Tila"),
    "letter_sent": ("Sent", "Lähetetty"),
    "download_bundle": ("Download the bundle (zip)", "Lataa tietopaketti (zip)"),
    "search_help": ("An e-mail address or a phone number. Also finds settled requests, by "
                    "keyed hash.",
                    "Sähköpostiosoite tai puhelinnumero. Löytää myös valmistuneet pyynnöt "
                    "avainnetun tiivisteen avulla."),
    "search_for": ("E-mail or phone", "Sähköposti tai puhelin"),
    "results": ("Requests of this subject", "Rekisteröidyn pyynnöt"),
    "no_results": ("No request has this identifier.", "Tällä tunnisteella ei ole pyyntöjä."),
    "at": ("At", "Aika"),
    "actor": ("Who", "Kuka"),
    "event": ("Event", "Tapahtuma"),
    "details": ("Details", "Tiedot"),
    "newer": ("Newer", "Uudemmat"),
    "older": ("Older", "Vanhemmat"),
    "page": ("Page {page}", "Sivu {page}"),
    "role": ("Role", "Rooli"),
    "role_viewer": ("viewer (reads)", "katselija (lukee)"),
    "role_operator": ("operator (acts on requests)", "käsittelijä (käsittelee pyyntöjä)"),
    "role_admin": ("admin (also users)", "ylläpitäjä (myös käyttäjät)"),
    "add_user": ("Add a user", "Lisää käyttäjä"),
    "user_added": ("User added.", "Käyttäjä lisätty."),
    "passwords_differ": ("The passwords differ.", "Salasanat eroavat."),
    "locked_until": ("Locked until", "Lukittu asti"),
    "done_ok": ("Done.", "Tehty."),
    "state_received": ("received", "vastaanotettu"),
    "state_verified": ("verified", "vahvistettu"),
    "state_in_progress": ("in progress", "käsittelyssä"),
    "state_completed": ("completed", "valmis"),
    "state_partially_completed": ("partially completed", "osittain valmis"),
    "state_rejected": ("rejected", "hylätty"),
    "state_awaiting_review": ("awaiting an operator", "odottaa käsittelijää"),
}

_INDEX = {lang: n for n, lang in enumerate(("en", "fi"))}


def translate(language: str, key: str, **values: object) -> str:
    """The phrase in `language`; an unknown key shows itself (a test finds them all)."""
    entry = _CATALOGUE.get(key)
    text = entry[_INDEX.get(language, 0)] if entry else key
    return text.format(**values) if values else text


def phrases() -> set[str]:
    return set(_CATALOGUE)


def from_header(header: str) -> str | None:
    """The best of our languages in an Accept-Language header (q-values honoured)."""
    best, best_q = None, 0.0
    for part in header.split(","):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                continue
        lang = tag.strip().lower().split("-")[0]
        if lang in LANGUAGES and q > best_q:
            best, best_q = lang, q
    return best


def language_of(request: Request) -> str:
    chosen = request.session.get("lang")
    if chosen in LANGUAGES:
        return chosen
    return from_header(request.headers.get("accept-language", "")) or DEFAULT


def translator(language: str) -> Callable[..., str]:
    def _(key: str, **values: object) -> str:
        return translate(language, key, **values)

    return _


# The hub's refusals an operator can meet on the desk, English pattern -> Finnish. A
# pattern matches the whole message; its groups are put back (ids, dates, values).
_HUB_ERRORS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.DOTALL), finnish) for pattern, finnish in (
        (r"give the subject's e-mail address or phone number \(or both\)",
         "Anna rekisteröidyn sähköpostiosoite tai puhelinnumero (tai molemmat)."),
        (r"not a valid e-mail address: (?P<email_detail>.*)",
         "Sähköpostiosoite ei kelpaa: {email_detail}"),
        (r"not a phone number: .*",
         "Puhelinnumero ei kelpaa: tarkista numero (esim. 040 123 4567 tai "
         "+358 40 123 4567)."),
        (r"not a possible phone number for its country",
         "Numero ei ole mahdollinen puhelinnumero maassaan."),
        (r'an address is written "street, postcode city" with a five-digit postcode',
         "Osoite kirjoitetaan muodossa \"katuosoite, postinumero toimipaikka\" "
         "viisinumeroisella postinumerolla."),
        (r"(?P<field>.+) is YYYY-MM-DD or YYYY-MM-DD HH:MM, not (?P<value>.+)",
         "{field}: muoto on VVVV-KK-PP tai VVVV-KK-PP HH:MM, ei {value}."),
        (r"the request cannot have been received in the future \((?P<date>.+)\)",
         "Pyyntö ei ole voinut saapua tulevaisuudessa ({date})."),
        (r"a receipt date before (?P<date>\S+) \(when the GDPR began to apply\) is surely "
         r"a typing mistake",
         "Saapumispäivä ennen {date} (jolloin tietosuoja-asetusta alettiin soveltaa) on "
         "varmasti kirjoitusvirhe."),
        (r"a rectification needs at least one corrected value .*",
         "Oikaisupyyntö tarvitsee ainakin yhden korjatun tiedon (sähköposti, puhelin, nimi "
         "tai osoite)."),
        (r"(?P<field>.+): only a rectification carries corrected values",
         "{field}: korjatut tiedot kuuluvat vain oikaisupyyntöön."),
        (r"(?P<field>.+) is (?P<n>\d+) characters; at most (?P<limit>\d+) are kept",
         "{field}: {n} merkkiä; enintään {limit} säilytetään."),
        (r"(?P<field>.+) is one of (?P<options>.+), not (?P<value>.+)",
         "{field} on jokin näistä: {options}, ei {value}."),
        (r"unknown request kind (?P<kind>.+?): use .*", "Tuntematon pyynnön laji {kind}."),
        (r"choose how the identity was checked",
         "Valitse, miten henkilöllisyys tarkistettiin."),
        (r"an extension needs a reason: the subject must be told why",
         "Jatkaminen tarvitsee syyn: se kerrotaan rekisteröidylle."),
        (r"an extension is 1 or (?P<max>\d+) months, not (?P<months>.+)",
         "Jatko on 1 tai {max} kuukautta, ei {months}."),
        (r"request (?P<id>\S+) was already extended to (?P<date>\S+)",
         "Pyynnön {id} määräaikaa on jo jatkettu {date} asti."),
        (r"request (?P<id>\S+) is (?P<state>\S+); only open requests are extended",
         "Pyyntö {id} on tilassa {state}; vain avoimen pyynnön määräaikaa voi jatkaa."),
        (r"request (?P<id>\S+) was due on (?P<date>\S+): an extension must be decided and "
         r"told to the subject within the first month",
         "Pyyntö {id} erääntyi {date}: jatkamisesta on päätettävä ja kerrottava "
         "rekisteröidylle ensimmäisen kuukauden aikana."),
        (r"a rejection needs a reason: the subject must be told why",
         "Hylkääminen tarvitsee syyn: se kerrotaan rekisteröidylle."),
        (r"a decision is approve or exclude", "Päätös on hyväksy tai rajaa pois."),
        (r"which candidate\? \(its number\)", "Mikä ehdokas? (sen numero)"),
        (r"candidate (?P<n>\d+) was already (?P<decision>\S+) by (?P<who>.+); a decision "
         r"is not changed",
         "Ehdokkaasta {n} on jo päätetty ({decision}, {who}); päätöstä ei muuteta."),
        (r"the outcome is done, not_found or retained.*",
         "Lopputulos on tehty, ei löytynyt tai säilytetään; päivä muodossa VVVV-KK-PP."),
        (r"a confirmation needs a note saying what was done",
         "Kuittaus tarvitsee huomautuksen siitä, mitä tehtiin."),
        (r"retained needs the date the hold ends .*",
         "Säilyttäminen tarvitsee päivän, jolloin säilytys päättyy, ja sen oikeusperusteen: "
         "säilytys ilman loppua ei ole säilytystä."),
        (r"--until and --basis are for a retained outcome",
         "Säilytyspäivä ja oikeusperuste kuuluvat vain lopputulokseen \"säilytetään\"."),
        (r"the hold would have ended on (?P<date>\S+): a hold whose end has passed is no "
         r"hold",
         "Säilytys olisi päättynyt {date}: päättynyt säilytys ei ole säilytystä."),
        (r"task (?P<task>\S+) is (?P<state>\S+); only a task waiting for an operator "
         r"\(manual_pending\) is confirmed",
         "Tehtävä {task} on tilassa {state}; vain käsittelijää odottava tehtävä kuitataan."),
        (r"request (?P<id>\S+) is still running; confirm (?P<system>\S+) once it waits for "
         r"an operator",
         "Pyyntö {id} on vielä käynnissä; kuittaa {system}, kun se odottaa käsittelijää."),
        (r"a user named (?P<name>.+) exists already", "Käyttäjä {name} on jo olemassa."),
        (r"a password has at least (?P<n>\d+) characters",
         "Salasanassa on oltava vähintään {n} merkkiä."),
        (r"a user name is 2-32 characters: .*",
         "Käyttäjätunnuksessa on 2–32 merkkiä: pieniä kirjaimia, numeroita, '.', '_' tai "
         "'-', ja se alkaa kirjaimella."),
    ))

# What email-validator says is wrong, in Finnish; anything else it says becomes the
# advice of the last line rather than English inside a Finnish sentence.
_EMAIL_DETAILS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), finnish) for pattern, finnish in (
        (r"An email address must have an @-sign\.", "siitä puuttuu @-merkki."),
        (r"There must be something before the @-sign\.", "ennen @-merkkiä ei ole mitään."),
        (r"There must be something after the @-sign\.", "@-merkin jälkeen ei ole mitään."),
        (r"The part after the @-sign is not valid\. It should have a period\.",
         "@-merkin jälkeisestä osasta puuttuu piste (esim. esimerkki.fi)."),
        (r"An email address cannot have two periods in a row\.",
         "siinä on kaksi pistettä peräkkäin."),
        (r".*invalid characters?.*?(?P<chars>: .*)?",
         "siinä on merkkejä, joita osoitteessa ei voi olla{chars}"),
        (r".*too long.*", "se on liian pitkä."),
    ))
_EMAIL_ADVICE = "tarkista sen muoto (esim. nimi@esimerkki.fi)."


def _email_detail(detail: str) -> str:
    for pattern, finnish in _EMAIL_DETAILS:
        found = pattern.fullmatch(detail.strip())
        if found is not None:
            return finnish.format(chars=found.groupdict().get("chars") or ".")
    return _EMAIL_ADVICE


# Names of the fields the hub's refusals mention (the desk's own labels pass as they are).
_HUB_FIELDS = {"the receipt date": "Saapumispäivä", "the name": "Nimi",
               "channel": "Saapumistapa", "language": "Kieli"}


def hub_error(language: str, message: str) -> str:
    """The hub's refusal in the desk's language; in English, or when unknown, as it is."""
    if language == "en":
        return message
    for pattern, wording in _HUB_ERRORS:
        found = pattern.fullmatch(message.strip())
        if found is not None:
            values = {k: _email_detail(v) if k == "email_detail" else _HUB_FIELDS.get(v, v)
                      for k, v in found.groupdict().items()}
            return wording.format(**values)
    field, sep, rest = message.partition(": ")  # "Korjattu nimi: <the hub's refusal>"
    if sep and rest:
        worded = hub_error(language, rest)
        if worded != rest:
            return f"{field}: {worded}"
    return message

