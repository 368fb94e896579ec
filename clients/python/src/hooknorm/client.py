"""The hooknorm client: ``normalize`` a webhook as received, ``subscribe`` to events.

A thin layer over the stubs generated from ``proto/hooknorm/v1`` (``hooknorm.v1``): it adds
only what every consumer would otherwise write by hand, namely the channel with its API key and
TLS, typed errors (``hooknorm.errors``) and a subscription that resumes on its own.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Iterable, Mapping, Optional, Sequence, Tuple, Union

import grpc

from . import errors
from .subscription import Subscription
from .v1 import event_pb2, normalizer_service_pb2, normalizer_service_pb2_grpc

Headers = Union[Mapping[str, str], Iterable[Tuple[str, str]]]
FilterLike = Union[normalizer_service_pb2.EventFilter, Mapping[str, Any], None]

# hooknorm may be configured to store events larger than gRPC's 4 MiB default; the CLI accepts
# the same bound.
MAX_RECEIVE_BYTES = 256 * 1024 * 1024

PROVIDERS = {
    "gigs": event_pb2.PROVIDER_GIGS,
    "abowire": event_pb2.PROVIDER_ABOWIRE,
    "mobile_manager": event_pb2.PROVIDER_MOBILE_MANAGER,
    "mobile-manager": event_pb2.PROVIDER_MOBILE_MANAGER,
}


def _read(value: Union[bytes, str, None]) -> Optional[bytes]:
    return value.encode() if isinstance(value, str) else value


class Client:
    """A connection to one hooknorm server.

    ``target`` is ``host:port``; an ``https://`` prefix turns TLS on, ``http://`` is plaintext.
    TLS is on when ``tls`` is true or any certificate is given: ``root_certificates`` (PEM, the
    CA to trust; default: the system's), and for mutual TLS ``certificate_chain`` and
    ``private_key`` (PEM). ``api_key`` is sent on every call as ``authorization: Bearer <key>``.
    ``channel`` replaces all of these with a channel of your own.
    """

    def __init__(
        self,
        target: str = "127.0.0.1:50051",
        *,
        api_key: Optional[str] = None,
        tls: bool = False,
        root_certificates: Union[bytes, str, None] = None,
        certificate_chain: Union[bytes, str, None] = None,
        private_key: Union[bytes, str, None] = None,
        server_name: Optional[str] = None,
        timeout: Optional[float] = 30.0,
        options: Sequence[Tuple[str, Any]] = (),
        channel: Optional[grpc.Channel] = None,
    ) -> None:
        if target.startswith("https://"):
            target, tls = target[len("https://") :], True
        elif target.startswith("http://"):
            target = target[len("http://") :]
        self.timeout = timeout
        self._metadata: Tuple[Tuple[str, str], ...] = (
            (("authorization", f"Bearer {api_key}"),) if api_key else ()
        )
        if channel is None:
            channel_options = [
                ("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
                # A subscription sees a silently dead connection within ~40 s, not never.
                ("grpc.keepalive_time_ms", 30_000),
                ("grpc.keepalive_timeout_ms", 10_000),
            ]
            if server_name:
                channel_options.append(("grpc.ssl_target_name_override", server_name))
            channel_options.extend(options)
            if tls or root_certificates or certificate_chain or private_key:
                credentials = grpc.ssl_channel_credentials(
                    root_certificates=_read(root_certificates),
                    private_key=_read(private_key),
                    certificate_chain=_read(certificate_chain),
                )
                channel = grpc.secure_channel(target, credentials, options=channel_options)
            else:
                channel = grpc.insecure_channel(target, options=channel_options)
        self.channel = channel
        #: The generated stub, for calls this class does not wrap (``GetEvent``, ``ListEvents``).
        self.stub = normalizer_service_pb2_grpc.NormalizerServiceStub(channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def metadata(self) -> Tuple[Tuple[str, str], ...]:
        """The call metadata (the API key), for calls made through ``stub``."""
        return self._metadata

    def normalize(
        self,
        source: str,
        body: Union[bytes, bytearray, memoryview, str],
        *,
        headers: Headers = (),
        request_uri: str = "",
        remote_addr: str = "",
        received_at: Optional[_dt.datetime] = None,
        dry_run: bool = False,
        view: str = "full",
        timeout: Optional[float] = None,
    ) -> event_pb2.Event:
        """Verifies, normalizes and stores one webhook exactly as it was received.

        Pass the raw ``body`` bytes (never re-serialized JSON: signatures are over the bytes),
        every header, the ``request_uri`` with its query (query tokens live there) and the
        peer's address. Returns the stored ``Event`` (for a redelivery, the event as first
        stored). ``view="basic"`` answers without the payloads (``data``, ``previous_data``,
        their ``_json`` texts and the provider detail), for callers that only acknowledge the
        webhook and read events from a subscription: less to send and decode. Raises
        ``ValueError`` for another view, else a ``hooknorm.errors.HooknormError`` subclass: ``VerificationError``,
        ``NotFoundError`` (``UNKNOWN_SOURCE``), ``InvalidRequestError``, or a retryable
        ``UnavailableError``.
        """
        if isinstance(body, str):
            body = body.encode()
        request = normalizer_service_pb2.VerifyAndNormalizeRequest(
            source=source,
            headers=[event_pb2.Header(name=n, value=v) for n, v in _header_pairs(headers)],
            body=bytes(body),
            request_uri=request_uri,
            remote_addr=remote_addr,
            dry_run=dry_run,
            view=_view(view),
        )
        if received_at is not None:
            request.received_at.FromDatetime(_utc(received_at))
        try:
            response = self.stub.VerifyAndNormalize(
                request,
                timeout=self.timeout if timeout is None else timeout,
                metadata=self._metadata,
            )
        except grpc.RpcError as error:
            raise errors.from_rpc_error(error) from None
        return response.event

    def subscribe(
        self,
        filter: FilterLike = None,
        *,
        after: Optional[int] = None,
        position: Optional[str] = None,
        since: Optional[_dt.datetime] = None,
        on_skipped=None,
        min_backoff: float = 0.1,
        max_backoff: float = 10.0,
    ) -> Subscription:
        """Events matching ``filter``, in sequence order, resuming across disconnects.

        Start after the sequence ``after`` (the cursor you persisted), or at ``since`` (a
        time), or at ``position`` ``"earliest"``; by default with events stored after this call.
        ``filter`` is an ``EventFilter`` or a dict with ``providers``, ``sources``, ``types``
        (exact or ``prefix.*``) and ``resource`` (``"kind:id"``).

        Iterating yields ``Event``s only: heartbeats are consumed, and when the stream ends
        with ``UNAVAILABLE`` (a restart, ``SHUTTING_DOWN``, a lost connection) or
        ``SUBSCRIBER_TOO_SLOW`` it reconnects after a jittered exponential backoff (from
        ``min_backoff`` to ``max_backoff`` seconds) with ``after_sequence`` = the last event
        yielded, so no event is yielded twice or skipped. Other errors raise. When retention
        removed events before they could be sent, ``on_skipped(EventsSkipped)`` is called and
        the subscription goes on; without it ``EventsSkippedError`` is raised.
        ``Subscription.cursor`` is the sequence to persist and pass as ``after`` next time.
        """
        if sum(x is not None for x in (after, position, since)) > 1:
            raise ValueError("give at most one of after, position and since")
        if position not in (None, "earliest", "latest"):
            raise ValueError(f"position must be 'earliest' or 'latest', got {position!r}")
        return Subscription(
            stub=self.stub,
            metadata=self._metadata,
            event_filter=event_filter(filter),
            after=after,
            earliest=position == "earliest",
            since=_utc(since) if since is not None else None,
            on_skipped=on_skipped,
            backoff=(min_backoff, max_backoff),
        )


def event_filter(spec: FilterLike) -> normalizer_service_pb2.EventFilter:
    """An ``EventFilter`` from a dict (``providers``, ``sources``, ``types``, ``resource``)."""
    if spec is None:
        return normalizer_service_pb2.EventFilter()
    if isinstance(spec, normalizer_service_pb2.EventFilter):
        return spec
    unknown = set(spec) - {"providers", "sources", "types", "resource"}
    if unknown:
        raise ValueError(f"unknown filter keys: {sorted(unknown)}")
    result = normalizer_service_pb2.EventFilter(
        sources=list(spec.get("sources", ())), types=list(spec.get("types", ()))
    )
    for name in spec.get("providers", ()):
        if name not in PROVIDERS:
            raise ValueError(f"unknown provider {name!r} (expected gigs, abowire or mobile_manager)")
        result.providers.append(PROVIDERS[name])
    resource = spec.get("resource")
    if resource:
        kind, _, ident = (
            resource.partition(":") if isinstance(resource, str) else (resource[0], ":", resource[1])
        )
        if not kind or not ident:
            raise ValueError(f"resource must be 'kind:id', got {resource!r}")
        result.resource.kind, result.resource.id = kind, ident
    return result


def _header_pairs(headers: Headers) -> Iterable[Tuple[str, str]]:
    # Flask's and Starlette's header objects both list repeated headers through items().
    items = headers.items() if hasattr(headers, "items") else headers
    return [(str(name), str(value)) for name, value in items]  # type: ignore[union-attr]


def _utc(time: _dt.datetime) -> _dt.datetime:
    if time.tzinfo is None:
        raise ValueError("times must be timezone-aware (e.g. datetime.now(timezone.utc))")
    return time.astimezone(_dt.timezone.utc)


_VIEWS = {
    "full": normalizer_service_pb2.VERIFY_AND_NORMALIZE_VIEW_FULL,
    "basic": normalizer_service_pb2.VERIFY_AND_NORMALIZE_VIEW_BASIC,
}


def _view(view: str) -> int:
    try:
        return _VIEWS[view]
    except KeyError:
        raise ValueError(f"view must be one of {sorted(_VIEWS)}, not {view!r}") from None
