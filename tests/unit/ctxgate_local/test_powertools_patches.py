"""ctxgate local serves concurrent requests on threads: each must see its own event through Powertools."""

from __future__ import annotations

import threading

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from ctxgate_local import powertools_patches

from tests.conftest import FakeContext, load_event


def test_concurrent_requests_each_read_their_own_event():
    # GIVEN a resolver whose route waits until both requests are inside it, then reads its event
    powertools_patches.apply()
    app, router = APIGatewayHttpResolver(), APIGatewayHttpRouter()
    both_inside = threading.Barrier(2, timeout=10)

    @router.get("/v1/sessions/<session_id>")
    def echo_path(session_id: str) -> Response:
        both_inside.wait()
        return Response(200, "text/plain", f"{session_id}:{router.current_event.path}")

    app.include_router(router)
    answers: dict[str, str] = {}

    def serve(session: str) -> None:
        event = load_event("get_session.json", rawPath=f"/v1/sessions/{session}")
        event["requestContext"]["http"]["path"] = f"/v1/sessions/{session}"
        event["pathParameters"] = {"session_id": session}
        answers[session] = app.resolve(event, FakeContext())["body"]

    # WHEN two requests are resolved at the same time on two threads
    threads = [threading.Thread(target=serve, args=(name,)) for name in ("alpha", "beta")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # THEN each route saw its own request
    assert answers == {"alpha": "alpha:/v1/sessions/alpha", "beta": "beta:/v1/sessions/beta"}
