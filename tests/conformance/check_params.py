"""Checks recorded Stripe requests (`--record-http` JSON lines) against the
typed parameter definitions of Stripe's official Python SDK: every endpoint
must be known, and every form or query parameter must exist there, at the
right nesting, with a value of the right type. Exits 1 on any unknown one.

    python check_params.py LOG.jsonl...      check logs
    python check_params.py --self-test       show that a bad request fails
"""

import importlib
import json
import re
import sys
import typing
from urllib.parse import parse_qsl, urlsplit

# (method, path pattern, SDK module, params class)
ENDPOINTS = [
    ("POST", r"/v1/customers", "_customer_create_params", "CustomerCreateParams"),
    ("POST", r"/v1/customers/[^/]+", "_customer_update_params", "CustomerUpdateParams"),
    ("GET", r"/v1/customers/[^/]+", "_customer_retrieve_params", "CustomerRetrieveParams"),
    ("POST", r"/v1/checkout/sessions", "checkout._session_create_params", "SessionCreateParams"),
    ("GET", r"/v1/checkout/sessions/[^/]+", "checkout._session_retrieve_params", "SessionRetrieveParams"),
    ("POST", r"/v1/checkout/sessions/[^/]+/expire", "checkout._session_expire_params", "SessionExpireParams"),
    ("GET", r"/v1/payment_methods", "_payment_method_list_params", "PaymentMethodListParams"),
    ("GET", r"/v1/payment_methods/[^/]+", "_payment_method_retrieve_params", "PaymentMethodRetrieveParams"),
    ("POST", r"/v1/payment_intents", "_payment_intent_create_params", "PaymentIntentCreateParams"),
    ("GET", r"/v1/payment_intents", "_payment_intent_list_params", "PaymentIntentListParams"),
    ("GET", r"/v1/payment_intents/[^/]+", "_payment_intent_retrieve_params", "PaymentIntentRetrieveParams"),
    ("GET", r"/v1/events", "_event_list_params", "EventListParams"),
    ("GET", r"/v1/charges/[^/]+", "_charge_retrieve_params", "ChargeRetrieveParams"),
    ("POST", r"/v1/refunds", "_refund_create_params", "RefundCreateParams"),
    ("GET", r"/v1/refunds", "_refund_list_params", "RefundListParams"),
    ("POST", r"/v1/accounts", "_account_create_params", "AccountCreateParams"),
    ("POST", r"/v1/account_links", "_account_link_create_params", "AccountLinkCreateParams"),
    # host-harness stripe-setup's own requests
    ("GET", r"/v1/webhook_endpoints", "_webhook_endpoint_list_params", "WebhookEndpointListParams"),
    ("POST", r"/v1/webhook_endpoints", "_webhook_endpoint_create_params", "WebhookEndpointCreateParams"),
    ("POST", r"/v1/webhook_endpoints/[^/]+", "_webhook_endpoint_update_params", "WebhookEndpointUpdateParams"),
    ("DELETE", r"/v1/webhook_endpoints/[^/]+", "_webhook_endpoint_delete_params", "WebhookEndpointDeleteParams"),
]


def params_class(method, path):
    for m, pattern, module, name in ENDPOINTS:
        if m == method and re.fullmatch(pattern, path):
            mod = importlib.import_module(f"stripe.params.{module}")
            return getattr(mod, name)
    return None


def alternatives(tp):
    """The types a (possibly NotRequired, Union'd, Literal) annotation allows."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return [a for arg in typing.get_args(tp) for a in alternatives(arg)]
    if origin is not None and getattr(origin, "__name__", "") in ("NotRequired", "Required"):
        return alternatives(typing.get_args(tp)[0])
    if str(origin).endswith("NotRequired") or str(origin).endswith("Required"):
        return alternatives(typing.get_args(tp)[0])
    return [tp]


def hints(cls):
    """Each parameter's type. Keys of RequestOptions (api_key, stripe_account,
    idempotency_key ...) are client options, never request parameters."""
    from stripe._request_options import RequestOptions

    module = vars(sys.modules[cls.__module__])
    out = {}
    for key, ann in cls.__annotations__.items():
        if key in RequestOptions.__annotations__:
            continue
        ref = typing.ForwardRef(ann) if isinstance(ann, str) else ann
        out[key] = typing._eval_type(ref, module, None)
    return out


def is_typeddict(tp):
    return isinstance(tp, type) and issubclass(tp, dict) and hasattr(tp, "__annotations__")


def step(tp, segment):
    """The type of `segment` inside a value of type `tp`, or None if it has none."""
    for alt in alternatives(tp):
        origin = typing.get_origin(alt)
        if segment.isdigit() and origin in (list, typing.List):
            return typing.get_args(alt)[0]
        if not segment.isdigit() and is_typeddict(alt):
            h = hints(alt)
            if segment in h:
                return h[segment]
        if origin in (dict, typing.Dict) or getattr(alt, "__name__", "") == "UntypedStripeObject":
            args = typing.get_args(alt)
            return args[-1] if args else str
    return None


def value_fits(tp, value):
    for alt in alternatives(tp):
        origin = typing.get_origin(alt)
        if origin is typing.Literal and value in typing.get_args(alt):
            return True
        if alt is str:
            return True
        if alt is int and re.fullmatch(r"-?\d+", value):
            return True
        if alt is bool and value in ("true", "false"):
            return True
        if alt is float and re.fullmatch(r"-?\d+(\.\d+)?", value):
            return True
    return False


# Parameters of the API version the plugin pins (2024-06-20) that the SDK's
# newer API version renamed: checked under the new name, with its type.
RENAMED = {
    # API 2026-10-28 calls it allowed_payment_method_types.
    ("POST", "/v1/payment_intents", "payment_method_types"): "allowed_payment_method_types",
    # ...and so for a Checkout Session (the card page's setup-mode session).
    ("POST", "/v1/checkout/sessions", "payment_method_types"): "allowed_payment_method_types",
}


def check_request(method, url, body):
    path = urlsplit(url).path
    cls = params_class(method, path)
    if cls is None:
        return [f"{method} {path}: not an endpoint this checker knows; add it to ENDPOINTS"]
    pairs = parse_qsl(urlsplit(url).query if method == "GET" else body, keep_blank_values=True)
    problems = []
    for key, value in pairs:
        segments = re.findall(r"[^\[\]]+", key)
        tp = cls
        for i, seg in enumerate(segments):
            tp = step(tp, seg) if i else hints(cls).get(RENAMED.get((method, path, seg), seg))
            if tp is None:
                problems.append(f"{method} {path}: unknown parameter {key!r} ({cls.__name__})")
                break
        else:
            if not value_fits(tp, value):
                problems.append(f"{method} {path}: {key}={value!r} is not a {tp}")
    return problems


def check_logs(paths):
    checked, problems = 0, []
    for path in paths:
        with open(path) as f:
            for line in f:
                x = json.loads(line)
                if (x.get("error") or "").lower().startswith("denied"):
                    continue  # refused by the host's gate: it never left
                checked += 1
                problems += check_request(x["method"], x["url"], x["body"])
    return checked, problems


def self_test():
    good = check_request("POST", "https://api.stripe.com/v1/payment_intents",
                         "amount=100&currency=gbp&off_session=true&confirm=true&metadata%5Binvoice_id%5D=inv_1")
    bad = check_request("POST", "https://api.stripe.com/v1/payment_intents",
                        "amount=100&currency=gbp&invoice_ref=inv_1&metadata%5Binvoice_id%5D=x")
    nested = check_request("POST", "https://api.stripe.com/v1/checkout/sessions",
                           "line_items%5B0%5D%5Bprice_data%5D%5Bunit_amounts%5D=5")
    typed = check_request("POST", "https://api.stripe.com/v1/payment_intents", "amount=ten&currency=gbp")
    assert good == [], good
    assert any("invoice_ref" in p for p in bad), bad
    assert any("unit_amounts" in p for p in nested), nested
    assert any("amount='ten'" in p for p in typed), typed
    print("self-test: an unknown, a misplaced and a mistyped parameter are each caught")


if __name__ == "__main__":
    if sys.argv[1:] == ["--self-test"]:
        self_test()
        sys.exit(0)
    checked, problems = check_logs(sys.argv[1:])
    for p in sorted(set(problems)):
        print("UNKNOWN:", p)
    if checked == 0:
        print("no recorded requests to check")
        sys.exit(1)
    print(f"checked {checked} recorded Stripe requests against stripe-python's parameter types: "
          f"{len(set(problems))} problems")
    sys.exit(1 if problems else 0)
