"""Microsoft.Insights autoscale settings, and the autoscale service that acts on them.

`scale-to-zero` is pointless if autoscale scales the set straight back, and
autoscale is the main source of instances the remediator never asked for. So the
simulator holds autoscale settings (`Microsoft.Insights/autoscalesettings`,
written synchronously as that resource provider does: 200/201, no operation to
poll) and lets a test play the autoscale service: a capacity change made by the
service's own principal, refused while the setting that targets the set is
disabled, and never outside the bounds of its profiles.
"""

from __future__ import annotations

import copy
import uuid

from sim import ids
from sim.behaviour import Behaviour
from sim.documents import JsonDict, properties
from sim.errors import invalid_parameter
from sim.events import RequestContext
from sim.ids import AUTOSCALE_TYPE, ResourceRef
from sim.store import Store

MAX_PROFILES = 20


class AutoscaleRefused(RuntimeError):
    """The autoscale service would not change this set (no setting, disabled, or out of bounds)."""


def _count(value: object, field: str) -> int:
    text = str(value) if value is not None else ""
    if not text.strip().lstrip("-").isdigit():
        raise invalid_parameter(f"The value '{value}' of '{field}' is not a whole number.", target=field)
    return int(text)


class AutoscaleSettings(Behaviour):
    """Autoscale settings: profiles with capacity bounds, a target, and the enabled flag."""

    resource_type = AUTOSCALE_TYPE
    synchronous = True

    def check_patch(self, store: Store, patch: JsonDict) -> None:
        # The REST spec's AutoscaleSettingResourcePatch.properties is an AutoscaleSetting, whose
        # `profiles` is required; whether Insights enforces that on a PATCH is not documented.
        props = patch.get("properties")
        if (
            store.settings.autoscale_patch_needs_profiles
            and isinstance(props, dict)
            and "profiles" not in props
        ):
            raise invalid_parameter("'profiles' is required in the properties of a PATCH.", target="profiles")

    def prepare_put(
        self, store: Store, ref: ResourceRef, body: JsonDict, current: JsonDict | None
    ) -> JsonDict:
        doc = {k: copy.deepcopy(v) for k, v in body.items() if k not in ("id", "name", "type", "etag")}
        props = properties(doc)
        props.pop("provisioningState", None)
        profiles = props.get("profiles")
        if not isinstance(profiles, list) or not 1 <= len(profiles) <= MAX_PROFILES:
            raise invalid_parameter(
                f"An autoscale setting needs between 1 and {MAX_PROFILES} profiles.", target="profiles"
            )
        for index, profile in enumerate(profiles):
            capacity = profile.get("capacity") if isinstance(profile, dict) else None
            if not isinstance(capacity, dict) or not profile.get("name"):
                raise invalid_parameter(
                    f"Profile {index} needs a name and a capacity.", target=f"profiles[{index}]"
                )
            low = _count(capacity.get("minimum"), f"profiles[{index}].capacity.minimum")
            high = _count(capacity.get("maximum"), f"profiles[{index}].capacity.maximum")
            default = _count(capacity.get("default"), f"profiles[{index}].capacity.default")
            if not 0 <= low <= default <= high:
                raise invalid_parameter(
                    f"Profile '{profile['name']}': the capacity must satisfy 0 <= minimum ({low}) <= "
                    f"default ({default}) <= maximum ({high}).",
                    target=f"profiles[{index}].capacity",
                )
            profile.setdefault("rules", [])
        target = props.get("targetResourceUri")
        if not isinstance(target, str) or not target:
            raise invalid_parameter("'targetResourceUri' is required.", target="targetResourceUri")
        # The REST API's default for `enabled` is false.
        props["enabled"] = bool(props.get("enabled", False))
        props["name"] = ref.name if current is None else current["name"]
        props.setdefault("notifications", [])
        return doc

    def put_delay(self, store: Store, doc: JsonDict, previous: JsonDict | None) -> float:
        return 0.0

    def complete_put(self, store: Store, doc: JsonDict, context: RequestContext) -> None:
        properties(doc).pop("provisioningState", None)  # Insights resources do not have one

    def seed_fill(self, store: Store, doc: JsonDict) -> None:
        properties(doc).setdefault("name", doc.get("name"))


def autoscale_target(store: Store, scale_set_id: str, capacity: int) -> JsonDict:
    """The enabled setting that allows `capacity` for the set, or AutoscaleRefused saying why not."""
    with store.lock:
        settings = [
            copy.deepcopy(doc)
            for doc in store.docs_of_type(AUTOSCALE_TYPE)
            if ids.key(str(properties(doc).get("targetResourceUri", ""))) == ids.key(scale_set_id)
        ]
    if not settings:
        raise AutoscaleRefused(f"no autoscale setting targets {scale_set_id}")
    enabled = [doc for doc in settings if properties(doc).get("enabled")]
    if not enabled:
        raise AutoscaleRefused(f"the autoscale setting {settings[0]['id']} of {scale_set_id} is disabled")
    setting = enabled[0]
    for profile in properties(setting).get("profiles") or []:
        bounds = profile.get("capacity") or {}
        if int(bounds.get("minimum", 0)) <= capacity <= int(bounds.get("maximum", 0)):
            return setting
    raise AutoscaleRefused(
        f"capacity {capacity} is outside every profile of the autoscale setting {setting['id']}"
    )


def autoscale_context(app_id: str, url: str) -> RequestContext:
    """The autoscale service's request: its own principal, no client request id of a user."""
    return RequestContext(
        method="PATCH",
        url=url,
        client_request_id=str(uuid.uuid4()),
        correlation_id=str(uuid.uuid4()),
        claims={
            "appid": app_id,
            "http://schemas.microsoft.com/identity/claims/objectidentifier": app_id,
            "idtyp": "app",
        },
        client_ip="",
    )


def scale_set_ref(scale_set_id: str) -> ResourceRef:
    ref = ids.parse(scale_set_id)
    if ref is None or ref.resource_type != ids.VMSS_TYPE:
        raise ValueError(f"{scale_set_id!r} is not a scale set id")
    return ref
