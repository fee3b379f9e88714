"""Step Functions implementation of :class:`ctxgate.agent.ports.Executions` (the agent-loop state machine)."""

from __future__ import annotations

from typing import Any

from ctxgate.agent.ports import ExecutionExists
from ctxgate.aws import client


class StepFunctionsExecutions:
    def __init__(self, state_machine_arn: str, stepfunctions: Any = None) -> None:
        self.state_machine_arn = state_machine_arn
        self._sfn = stepfunctions

    @property
    def sfn(self) -> Any:
        return self._sfn or client("stepfunctions")

    def start(self, name: str, payload: str) -> str:
        from botocore.exceptions import ClientError

        try:
            return self.sfn.start_execution(stateMachineArn=self.state_machine_arn, name=name, input=payload)[
                "executionArn"
            ]
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ExecutionAlreadyExists":
                raise ExecutionExists(name) from error
            raise

    def stop(self, execution_arn: str, *, cause: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self.sfn.stop_execution(executionArn=execution_arn, error="Cancelled", cause=cause)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ExecutionDoesNotExist":
                raise
