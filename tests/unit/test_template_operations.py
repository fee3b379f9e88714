"""template.yaml's operational resources: every function's logs are retained for the configured days, the HTTP
API is throttled and access-logged as JSON, and every dead-letter queue and the agent loop's failed executions raise
an alarm that notifies the optional SNS topic."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from ctxgate_local.template import load_template

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    return load_template(ROOT / "template.yaml")["Resources"]


def _of_type(resources: dict[str, Any], kind: str) -> dict[str, Any]:
    return {name: r for name, r in resources.items() if r["Type"] == kind}


def test_every_function_has_a_log_group_with_the_configured_retention(resources):
    # GIVEN the log groups, by the name they give
    groups = {
        r["Properties"]["LogGroupName"]["Fn::Sub"]: r["Properties"]
        for r in _of_type(resources, "AWS::Logs::LogGroup").values()
        if "LogGroupName" in r["Properties"]
    }
    # THEN each function's /aws/lambda/<name> group is one of them, kept for LogRetentionDays
    for function in _of_type(resources, "AWS::Serverless::Function"):
        group = groups.get(f"/aws/lambda/${{{function}}}")
        assert group is not None, f"{function} has no log group"
        assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_the_http_api_is_throttled_and_access_logged_as_json(resources):
    # GIVEN the HTTP API
    (api,) = _of_type(resources, "AWS::Serverless::HttpApi").values()
    props = api["Properties"]
    # THEN every route is throttled by the parameters
    assert props["DefaultRouteSettings"] == {
        "ThrottlingBurstLimit": {"Ref": "ApiThrottlingBurstLimit"},
        "ThrottlingRateLimit": {"Ref": "ApiThrottlingRateLimit"},
    }
    # AND its access log goes to a retained log group, one JSON object per request
    destination = props["AccessLogSettings"]["DestinationArn"]["Fn::GetAtt"]
    assert destination[1] == "Arn"
    assert resources[destination[0]]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    line = re.sub(r"\$context\.[A-Za-z.]+", "value", props["AccessLogSettings"]["Format"])
    assert json.loads(line)["requestId"] == "value"


def _queue_alarms(resources: dict[str, Any]) -> dict[str, Any]:
    """Alarms on a queue's visible messages, by the queue's logical id."""
    return {
        r["Properties"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0]: r["Properties"]
        for r in _of_type(resources, "AWS::CloudWatch::Alarm").values()
        if r["Properties"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
    }


def test_every_dead_letter_queue_has_an_alarm_on_any_visible_message(resources):
    # GIVEN the queues other queues redrive to
    dead_letter_queues = {
        q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for q in _of_type(resources, "AWS::SQS::Queue").values()
        if "RedrivePolicy" in q.get("Properties", {})
    }
    alarms = _queue_alarms(resources)
    # THEN each has an alarm that fires on more than zero visible messages
    assert dead_letter_queues and dead_letter_queues <= set(alarms)
    for queue in dead_letter_queues:
        alarm = alarms[queue]
        assert alarm["Namespace"] == "AWS/SQS"
        assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}]
        assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)


def test_failed_agent_executions_raise_an_alarm(resources):
    # GIVEN the alarms on failed executions
    alarms = [
        r["Properties"]
        for r in _of_type(resources, "AWS::CloudWatch::Alarm").values()
        if r["Properties"]["MetricName"] == "ExecutionsFailed"
    ]
    # THEN every state machine has one, on AWS/States ExecutionsFailed > 0
    for machine in _of_type(resources, "AWS::Serverless::StateMachine"):
        (alarm,) = [a for a in alarms if a["Dimensions"][0]["Value"] == {"Ref": machine}]
        assert alarm["Namespace"] == "AWS/States" and alarm["Dimensions"][0]["Name"] == "StateMachineArn"
        assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)


def test_alarms_notify_the_topic_only_when_one_is_given(resources):
    # GIVEN actions that exist only under the HasAlarmTopic condition (AlarmTopicArn not empty)
    conditional = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    # THEN every alarm uses them for both firing and clearing
    for name, alarm in _of_type(resources, "AWS::CloudWatch::Alarm").items():
        assert alarm["Properties"]["AlarmActions"] == conditional, name
        assert alarm["Properties"]["OKActions"] == conditional, name


def test_the_local_runtime_provisions_the_template_and_skips_what_it_does_not_emulate(aws):
    # GIVEN the template provisioned by ctxgate local's reader (the aws fixture)
    # THEN its tables, queues and functions exist, and log groups and alarms were passed over without error
    assert {"SessionsTable", "RunsDeadLetterQueue", "ApiFunction"} <= set(aws.physical)
    assert not {"ApiAccessLogGroup", "AgentExecutionsFailedAlarm"} & set(aws.physical)
