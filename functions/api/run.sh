#!/bin/sh
# Entry point of the streaming function (StreamingFunction in template.yaml): the Lambda Web Adapter runs this
# command, then forwards each function-URL request to the server on $PORT. The server serves this directory's
# app.lambda_handler, the api function's own handler (ctxgate/api/stream_server.py).
export PYTHONPATH="/opt/python:${LAMBDA_TASK_ROOT}:${PYTHONPATH}"
exec python3 -m ctxgate.api.stream_server
