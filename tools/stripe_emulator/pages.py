"""The pages a customer sees: a Checkout Session's payment page, a payment link's entry, a page that pays
a Payment Intent by its client secret as Stripe.js would, and the 3D Secure step a card may ask for."""

import json
from datetime import UTC, datetime
from html import escape
from urllib.parse import parse_qs, urlencode

from . import api_billing, api_checkout, api_payments
from .errors import StripeError

ZERO_DECIMAL = frozenset("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split())

STYLE = """
body { font-family: system-ui, sans-serif; background: #f6f9fc; color: #1a1f36; margin: 0; }
main { max-width: 460px; margin: 48px auto; background: #fff; border-radius: 8px; padding: 32px;
       box-shadow: 0 2px 8px rgba(0,0,0,.08); }
.badge { font-size: 12px; color: #697386; text-transform: uppercase; letter-spacing: .05em; }
table { width: 100%; border-collapse: collapse; margin: 24px 0; }
td { padding: 8px 0; border-bottom: 1px solid #e3e8ee; }
td.amount { text-align: right; white-space: nowrap; }
tr.total td { font-weight: 600; border-bottom: none; font-size: 18px; }
button { width: 100%; padding: 12px; border: 0; border-radius: 6px; font-size: 16px; cursor: pointer; margin-top: 8px; }
.pay { background: #635bff; color: #fff; } .decline { background: #e3e8ee; color: #1a1f36; }
.cancel { display: block; text-align: center; margin-top: 16px; color: #697386; }
.note { color: #697386; font-size: 13px; }
"""


def money(amount: int, currency: str) -> str:
    if currency in ZERO_DECIMAL:
        return f"{amount:,} {currency.upper()}"
    return f"{amount / 100:,.2f} {currency.upper()}"


def _page(title: str, body: str, status: int = 200) -> tuple[int, str]:
    html = (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(title)}</title>"
        f"<meta name=viewport content='width=device-width,initial-scale=1'><style>{STYLE}</style></head>"
        f"<body><main><div class=badge>Stripe emulator &middot; test mode</div>{body}</main></body></html>"
    )
    return status, html


def checkout_page(store, session_id: str) -> tuple[int, str]:
    session = store.get("checkout.session", session_id)
    if session is None:
        return _page("Not found", "<h1>This checkout link is not valid.</h1>", 404)
    if session["status"] != "open":
        return _page(
            "Checkout closed",
            f"<h1>This checkout is {escape(session['status'])}.</h1><p class=note>Nothing more can be paid here.</p>",
            410,
        )
    rows = "".join(
        f"<tr><td>{escape(item['description'] or '')} &times; {item['quantity']}</td>"
        f"<td class=amount>{money(item['amount_total'], item['currency'])}</td></tr>"
        for item in store.line_items.get(session_id, [])
    )
    total = money(session["amount_total"], session["currency"])
    cancel = (
        f"<a class=cancel href='{escape(session['cancel_url'])}'>Cancel and go back</a>"
        if session["cancel_url"]
        else ""
    )
    email = escape(session["customer_email"] or "")
    body = f"""
<h1>Pay {total}</h1>
<table>{rows}<tr class=total><td>Total</td><td class=amount>{total}</td></tr></table>
<form method=post>
  <label class=note>Email <input name=email type=email value="{email}" placeholder="you@example.com"></label>
  <button class=pay name=outcome value=paid>Pay {total}</button>
  <button class=decline name=outcome value=declined>Decline (card 4000 0000 0000 0002)</button>
</form>{cancel}
<p class=note>No card is charged: this page belongs to the local Stripe emulator.</p>"""
    return _page(f"Pay {total}", body)


def submit_checkout(store, session_id: str, form_body: bytes) -> tuple[int, str, str | None]:
    """Pay or decline from the hosted page; answers (status, html, redirect location)."""
    form = {key: values[0] for key, values in parse_qs(form_body.decode()).items()}
    session = store.get("checkout.session", session_id)
    if session is None:
        status, html = _page("Not found", "<h1>This checkout link is not valid.</h1>", 404)
        return status, html, None
    outcome = form.get("outcome", "paid")
    try:
        api_checkout.complete_session(store, session, outcome, email=form.get("email") or None)
    except StripeError as error:
        status, html = _page("Payment failed", f"<h1>{escape(error.message)}</h1>", 400)
        return status, html, None
    if outcome == "declined":
        return 303, "", session["cancel_url"] or f"/c/pay/{session_id}"
    location = (session["success_url"] or "").replace("{CHECKOUT_SESSION_ID}", session_id)
    return 303, "", location


def payment_link_entry(store, public_url: str, slug: str, query: str = "") -> tuple[int, str, str | None]:
    link = store.get("payment_link", f"plink_{slug}")
    if link is None:
        status, html = _page("Not found", "<h1>This payment link is not valid.</h1>", 404)
        return status, html, None
    given = {key: values[0] for key, values in parse_qs(query).items()}
    try:
        session = api_checkout.session_for_link(store, public_url, link, **api_checkout.link_url_parameters(given))
    except StripeError as error:
        status, html = _page("Unavailable", f"<h1>{escape(error.message)}</h1>", 410)
        return status, html, None
    return 303, "", session["url"]


def thanks_page() -> tuple[int, str]:
    return _page("Thank you", "<h1>Thanks for your payment.</h1><p class=note>A receipt is on its way.</p>")


# --- a Payment Intent paid from the browser, as an app with Stripe.js or a mobile SDK does ---------

CONFIRM_SCRIPT = """
const form = document.getElementById("pay"), result = document.getElementById("result");
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  form.querySelector("button").disabled = true;
  const body = new URLSearchParams({key: PAGE.key, client_secret: PAGE.clientSecret,
    payment_method: new FormData(form).get("payment_method"), return_url: location.href});
  const answer = await fetch(`/v1/payment_intents/${PAGE.intent}/confirm`, {method: "POST", body});
  const data = await answer.json();
  const intent = data.error ? data.error.payment_intent : data;
  if (intent && intent.next_action && intent.next_action.type === "redirect_to_url") {
    location.assign(intent.next_action.redirect_to_url.url);
    return;
  }
  result.textContent = data.error ? data.error.message : `Payment ${intent.status}.`;
  form.querySelector("button").disabled = false;
  if (!data.error) location.reload();
});
"""
CARD_CHOICES = (
    ("pm_card_visa", "Visa 4242: succeeds"),
    ("pm_card_mastercard", "Mastercard 4444: succeeds"),
    ("pm_card_chargeDeclined", "Visa 0002: declined"),
    ("pm_card_chargeDeclinedInsufficientFunds", "Visa 9995: insufficient funds"),
    ("pm_card_authenticationRequired", "Visa 3184: asks for 3D Secure"),
)


def _card_radios(choices: tuple[tuple[str, str], ...]) -> str:
    return "".join(
        f"<label><input type=radio name=payment_method value={value}{' checked' if index == 0 else ''}> "
        f"{escape(label)}</label><br>"
        for index, (value, label) in enumerate(choices)
    )


def intent_confirm_page(store, query: str) -> tuple[int, str]:
    """`/confirm?client_secret=...&key=pk_test_...`: pay an intent with a test card, through the public API."""
    given = {key: values[0] for key, values in parse_qs(query).items()}
    intent = api_payments.intent_by_client_secret(store, given.get("client_secret"))
    if intent is None:
        return _page("Not found", "<h1>No payment matches this client secret.</h1>", 404)
    total = money(intent["amount"], intent["currency"])
    error = intent["last_payment_error"]
    status = f"<p>Status: <b>{escape(intent['status'])}</b></p>"
    if error:
        status += f"<p class=note>Last attempt: {escape(error['message'])}</p>"
    if intent["status"] not in api_payments.CONFIRMABLE:
        return _page(f"Payment {intent['status']}", f"<h1>{total}</h1>{status}")
    cards = _card_radios(CARD_CHOICES)
    page = {"intent": intent["id"], "clientSecret": intent["client_secret"], "key": given.get("key", "")}
    body = f"""
<h1>Pay {total}</h1>{status}
<form id=pay>{cards}<button class=pay type=submit>Pay {total}</button></form>
<p id=result class=note></p>
<p class=note>The payment is confirmed with the publishable key and the client secret, as Stripe.js does.</p>
<script>const PAGE = {_script_literal(page)};{CONFIRM_SCRIPT}</script>"""
    return _page(f"Pay {total}", body)


def _script_literal(value) -> str:
    """JSON safe inside a <script> element: a `</script>` in a query parameter cannot end it."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def authentication_page(store, intent_id: str, query: str) -> tuple[int, str]:
    intent = _intent_to_authenticate(store, intent_id, query)
    if intent is None:
        return _page("Not found", "<h1>Nothing to authenticate here.</h1>", 404)
    total = money(intent["amount"], intent["currency"])
    body = f"""
<h1>3D Secure</h1><p>Your bank asks you to confirm a payment of {total}.</p>
<form method=post>
  <button class=pay name=outcome value=complete>Complete authentication</button>
  <button class=decline name=outcome value=fail>Fail authentication</button>
</form>"""
    return _page("3D Secure", body)


def submit_authentication(store, intent_id: str, query: str, form_body: bytes) -> tuple[int, str, str | None]:
    intent = _intent_to_authenticate(store, intent_id, query)
    if intent is None:
        status, html = _page("Not found", "<h1>Nothing to authenticate here.</h1>", 404)
        return status, html, None
    passed = parse_qs(form_body.decode()).get("outcome", ["complete"])[0] == "complete"
    api_payments.finish_authentication(store, intent, passed, store.emit)
    back = store.authentication_returns.pop(intent["id"], None)
    if not back:
        status, html = _page("Done", f"<h1>Authentication {'complete' if passed else 'failed'}.</h1>")
        return status, html, None
    answer = {
        "payment_intent": intent["id"],
        "payment_intent_client_secret": intent["client_secret"],
        "redirect_status": "succeeded" if intent["status"] == "succeeded" else "failed",
    }
    separator = "&" if "?" in back else "?"
    return 303, "", f"{back}{separator}{urlencode(answer)}"


def _intent_to_authenticate(store, intent_id: str, query: str) -> dict | None:
    secret = parse_qs(query).get("client_secret", [""])[0]
    intent = api_payments.intent_by_client_secret(store, secret)
    if intent is None or intent["id"] != intent_id or intent["status"] != "requires_action":
        return None
    return intent


# --- billing: the customer portal and hosted invoices ------------------------------------------------

SAVED_CARD_CHOICES = (
    ("pm_card_visa", "Visa 4242: succeeds"),
    ("pm_card_mastercard", "Mastercard 4444: succeeds"),
    ("pm_card_chargeCustomerFail", "Visa 0341: saved, but every charge is declined"),
    ("pm_card_authenticationRequired", "Visa 3184: asks for 3D Secure on each charge"),
)


def _card_form(action: str, button: str) -> str:
    return (
        f"<form method=post><input type=hidden name=action value={action}>{_card_radios(SAVED_CARD_CHOICES)}"
        f"<button class=pay>{button}</button></form>"
    )


def _period(sub: dict) -> str:
    end = sub["items"]["data"][0]["current_period_end"]
    return datetime.fromtimestamp(end, UTC).strftime("%Y-%m-%d")


def portal_page(store, session_id: str) -> tuple[int, str]:
    """What the customer portal shows: subscriptions (cancel, or keep one set to cancel), invoices, the card."""
    if session_id == api_billing.PORTAL_LOGIN_PAGE:
        return portal_login_page()
    session = store.get("billing_portal.session", session_id)
    if session is None:
        return _page("Not found", "<h1>This portal link is not valid.</h1>", 404)
    customer = store.get("customer", session["customer"])
    subs = [s for s in store.newest_first("subscription") if s["customer"] == customer["id"]]
    rows = []
    for sub in subs:
        item = sub["items"]["data"][0]
        what = f"{escape(item['price']['product'])}: {money(item['price']['unit_amount'], sub['currency'])}"
        state = escape(sub["status"])
        if sub["status"] == "canceled":
            action = ""
        elif sub["cancel_at_period_end"]:
            state += f", ends {_period(sub)}"
            action = _sub_button(sub, "renew", "Don't cancel")
        else:
            state += f", renews {_period(sub)}"
            action = _sub_button(sub, "cancel", "Cancel plan")
        rows.append(f"<tr><td>{what}<br><span class=note>{state}</span></td><td class=amount>{action}</td></tr>")
    invoices = "".join(
        f"<tr><td><a href='{escape(i['hosted_invoice_url'])}'>{escape(i['number'] or i['id'])}</a></td>"
        f"<td class=amount>{money(i['amount_due'], i['currency'])} {escape(i['status'])}</td></tr>"
        for i in store.newest_first("invoice")
        if i["customer"] == customer["id"]
    )
    method = store.get("payment_method", customer["invoice_settings"]["default_payment_method"] or "")
    card = f"{method['card']['brand']} ending {method['card']['last4']}" if method else "none"
    back = f"<a class=cancel href='{escape(session['return_url'])}'>Return</a>" if session["return_url"] else ""
    body = f"""
<h1>Your plans</h1><table>{"".join(rows) or "<tr><td>No subscriptions.</td></tr>"}</table>
<h2>Invoices</h2><table>{invoices or "<tr><td>No invoices.</td></tr>"}</table>
<h2>Payment method</h2><p>Card on file: <b>{escape(card)}</b></p>
{_card_form("card", "Save this card and pay what is due")}{back}"""
    return _page("Billing", body)


def _sub_button(sub: dict, action: str, label: str) -> str:
    return (
        f"<form method=post><input type=hidden name=action value={action}>"
        f"<input type=hidden name=subscription value={escape(sub['id'])}><button class=decline>{label}</button></form>"
    )


def portal_login_page(note: str = "", status: int = 200) -> tuple[int, str]:
    """The portal's login page (the link a shop can mail): the customer gives the email they pay with."""
    body = f"""
<h1>Manage your billing</h1>{f"<p class=note>{escape(note)}</p>" if note else ""}
<form method=post><label class=note>Email <input name=email type=email placeholder="you@example.com"></label>
<button class=pay>Continue</button></form>"""
    return _page("Billing", body, status)


def submit_portal_login(store, form_body: bytes) -> tuple[int, str, str | None]:
    """Stripe mails a one-time link to the customer of this email; in test mode the emulator opens their
    portal at once."""
    email = (parse_qs(form_body.decode()).get("email") or [""])[0].strip().lower()
    customers = [
        c
        for c in store.newest_first("customer")
        if not c.get("deleted") and email and (c.get("email") or "").lower() == email
    ]
    if not customers:
        return (*portal_login_page("No customer has this email.", 400), None)
    session = api_billing.new_portal_session(store, customers[0]["id"], return_url=None)
    return 303, "", f"/p/session/{session['id']}"


def submit_portal(store, session_id: str, form_body: bytes) -> tuple[int, str, str | None]:
    if session_id == api_billing.PORTAL_LOGIN_PAGE:
        return submit_portal_login(store, form_body)
    session = store.get("billing_portal.session", session_id)
    if session is None:
        status, html = _page("Not found", "<h1>This portal link is not valid.</h1>", 404)
        return status, html, None
    form = {key: values[0] for key, values in parse_qs(form_body.decode()).items()}
    customer = store.get("customer", session["customer"])
    try:
        if form.get("action") == "card":
            method = api_billing.save_card(store, customer, form.get("payment_method", ""), store.emit)
            api_billing.make_default_card(store, customer, method, store.emit)
            api_billing.pay_open_invoices(store, customer["id"], store.emit)
        elif form.get("action") in ("cancel", "renew"):
            sub = store.get("subscription", form.get("subscription", ""))
            if sub is None or sub["customer"] != customer["id"]:
                raise StripeError(404, "No such subscription.")
            api_billing.set_cancel_at_period_end(store, sub, form["action"] == "cancel", store.emit)
    except StripeError as error:
        status, html = _page("Not saved", f"<h1>{escape(error.message)}</h1>", 400)
        return status, html, None
    return 303, "", f"/p/session/{session_id}"


def invoice_page(store, invoice_id: str) -> tuple[int, str]:
    invoice = store.get("invoice", invoice_id)
    if invoice is None:
        return _page("Not found", "<h1>No such invoice.</h1>", 404)
    rows = "".join(
        f"<tr><td>{escape(line['description'] or '')}</td>"
        f"<td class=amount>{money(line['amount'], line['currency'])}</td></tr>"
        for line in invoice["lines"]["data"]
    )
    due = money(invoice["amount_due"], invoice["currency"])
    pay = _card_form("pay", f"Pay {due}") if invoice["status"] == "open" else ""
    body = f"""
<h1>Invoice {escape(invoice["number"] or invoice["id"])}</h1><p>Status: <b>{escape(invoice["status"])}</b></p>
<table>{rows}<tr class=total><td>Amount due</td><td class=amount>{due}</td></tr></table>{pay}"""
    return _page(f"Invoice {invoice['number']}", body)


def submit_invoice(store, invoice_id: str, form_body: bytes) -> tuple[int, str, str | None]:
    """Pay an open invoice with a card from its hosted page (the card is not saved, as on Stripe's page)."""
    invoice = store.get("invoice", invoice_id)
    if invoice is None or invoice["status"] != "open":
        status, html = _page("Not open", "<h1>This invoice cannot be paid.</h1>", 400)
        return status, html, None
    form = {key: values[0] for key, values in parse_qs(form_body.decode()).items()}
    card = api_payments.TEST_CARDS.get(form.get("payment_method", ""))
    if card is None:
        status, html = _page("Unknown card", "<h1>Choose one of the test cards.</h1>", 400)
        return status, html, None
    method = api_payments.new_payment_method(store, card, invoice["customer"])
    api_billing.pay_invoice(
        store, invoice, store.emit, at=api_billing.customer_time(store, invoice["customer"]), method=method
    )
    return 303, "", f"/i/{invoice_id}"
