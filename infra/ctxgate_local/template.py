"""Read template.yaml and create its stateful resources in moto, so local runs cannot drift from the template.

Intrinsics are resolved just enough for local use: ``Ref`` (parameters, pseudo parameters, resources),
``Fn::GetAtt`` (``Arn``, ``QueueUrl``, ``QueueName``, ``Name``), ``Fn::Sub``, ``Fn::Join``, ``Fn::FindInMap``
(e.g. the HttpApi's DefaultAuthorizer from ``AuthMode``) and the conditions (``Fn::If``, ``Fn::Equals``,
``Fn::Not``, ``Condition``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REGION = "us-east-1"
ACCOUNT = "123456789012"
PSEUDO = {
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "ctxgate-local",
    "AWS::NoValue": None,
}


class _CfnLoader(yaml.SafeLoader):
    pass


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_template(path: Path) -> dict[str, Any]:
    return yaml.load(path.read_text(), Loader=_CfnLoader)


@dataclass
class Function:
    logical_id: str
    code_uri: Path
    handler: str
    environment: dict[str, str]
    timeout: int
    routes: list[tuple[str, str]] = field(default_factory=list)
    """(METHOD, path template) pairs from its HttpApi events."""
    queues: list[QueueMapping] = field(default_factory=list)
    """Its SQS event source mappings."""


@dataclass
class QueueMapping:
    queue_logical_id: str
    batch_size: int
    report_failures: bool


@dataclass
class LocalStack:
    """What the template became locally: physical names, function definitions and resolved outputs."""

    template: dict[str, Any]
    root: Path
    parameters: dict[str, Any]
    physical: dict[str, str] = field(default_factory=dict)
    arns: dict[str, str] = field(default_factory=dict)
    attributes: dict[tuple[str, str], str] = field(default_factory=dict)
    functions: dict[str, Function] = field(default_factory=dict)

    @property
    def resources(self) -> dict[str, Any]:
        return self.template.get("Resources", {})

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self._ref(arg)
            if key == "Fn::GetAtt":
                return self.attributes[(arg[0], arg[1])]
            if key == "Fn::Sub":
                return self._sub(arg)
            if key == "Fn::Join":
                return arg[0].join(str(self.resolve(v)) for v in arg[1])
            if key == "Fn::FindInMap":
                name, top, second = (self.resolve(v) for v in arg[:3])
                return self.template["Mappings"][name][top][second]
            if key == "Fn::If":
                name, if_true, if_false = arg
                return self.resolve(if_true if self.condition(name) else if_false)
            if key == "Fn::Equals":
                return self.resolve(arg[0]) == self.resolve(arg[1])
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Condition":
                return self.condition(arg)
        return {k: self.resolve(v) for k, v in value.items()}

    def condition(self, name: str) -> bool:
        """The value of one of the template's ``Conditions`` under the stack's parameters."""
        return bool(self.resolve(self.template.get("Conditions", {})[name]))

    def _ref(self, name: str) -> Any:
        if name in PSEUDO:
            return PSEUDO[name]
        if name in self.parameters:
            return self.parameters[name]
        return self.physical[name]

    def _sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(variables[name])
            if "." in name:
                logical, attribute = name.split(".", 1)
                return str(self.attributes[(logical, attribute)])
            return str(self._ref(name))

        return re.sub(r"\$\{([^}!]+)\}", replace, text)


def read_stack(template_path: Path, overrides: dict[str, Any] | None = None) -> LocalStack:
    template = load_template(template_path)
    parameters = {name: spec.get("Default", "") for name, spec in template.get("Parameters", {}).items()}
    parameters.update(overrides or {})
    return LocalStack(template=template, root=template_path.parent, parameters=parameters)


def _name(logical_id: str, lower: bool = False) -> str:
    name = f"ctxgate-local-{logical_id}"
    return name.lower() if lower else name


def provision(stack: LocalStack, session: Any) -> LocalStack:
    """Create every table, bucket, queue, state machine and function of the template in the AWS endpoint ``session``
    points at. Functions get an empty package: register ``stack.functions`` for in-process invocation
    (``ctxgate_local.handlers.LocalFunctions.add_stack``) to make them run."""
    resources = stack.resources
    ddb, s3, sqs = session.client("dynamodb"), session.client("s3"), session.client("sqs")
    # Queues first, dead-letter queues before the queues that redrive to them.
    queues = [lid for lid, r in resources.items() if r["Type"] == "AWS::SQS::Queue"]
    queues.sort(key=lambda lid: "RedrivePolicy" in resources[lid].get("Properties", {}))
    for logical_id in queues:
        _create_queue(stack, sqs, logical_id, resources[logical_id].get("Properties", {}))
    for logical_id, resource in resources.items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::DynamoDB::Table":
            _create_table(stack, ddb, logical_id, props)
        elif resource["Type"] == "AWS::S3::Bucket":
            _create_bucket(stack, s3, logical_id, props)
    functions = [lid for lid, r in resources.items() if r["Type"] == "AWS::Serverless::Function"]
    for logical_id in functions:  # names and ARNs first: state machines and environments refer to them
        name = _name(logical_id)
        arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
        stack.physical[logical_id] = name
        stack.arns[logical_id] = arn
        stack.attributes[(logical_id, "Arn")] = arn
    for logical_id, resource in resources.items():
        if resource["Type"] == "AWS::Serverless::StateMachine":
            _create_state_machine(stack, session, logical_id, resource.get("Properties", {}))
    role = _lambda_role(session) if functions else ""
    lam = session.client("lambda") if functions else None
    for logical_id in functions:
        function = _function(stack, logical_id, resources[logical_id].get("Properties", {}))
        stack.functions[logical_id] = function
        lam.create_function(  # type: ignore[union-attr]
            FunctionName=stack.physical[logical_id],
            Runtime="python3.12",
            Role=role,
            Handler=function.handler,
            Code={"ZipFile": _EMPTY_ZIP},
            Timeout=function.timeout,
            Environment={"Variables": function.environment},
        )
    return stack


def _empty_zip() -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "# the real handler runs in-process: see ctxgate_local.moto_patches\n")
    return buffer.getvalue()


_EMPTY_ZIP = _empty_zip()


def _lambda_role(session: Any) -> str:
    import json

    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    return session.client("iam").create_role(
        RoleName="ctxgate-local-lambda", AssumeRolePolicyDocument=json.dumps(policy)
    )["Role"]["Arn"]


def _create_state_machine(stack: LocalStack, session: Any, logical_id: str, props: dict[str, Any]) -> None:
    """Create the state machine from its ASL file with ``DefinitionSubstitutions`` applied, as SAM does."""
    definition = (stack.root / props["DefinitionUri"]).read_text()
    for key, value in (props.get("DefinitionSubstitutions") or {}).items():
        definition = definition.replace("${" + key + "}", str(stack.resolve(value)))
    name = _name(logical_id)
    arn = session.client("stepfunctions").create_state_machine(
        name=name,
        definition=definition,
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/ctxgate-local-states",
        type=props.get("Type", "STANDARD"),
    )["stateMachineArn"]
    stack.physical[logical_id] = arn  # Ref of a state machine is its ARN
    stack.arns[logical_id] = arn
    stack.attributes.update({(logical_id, "Arn"): arn, (logical_id, "Name"): name})


def _create_queue(stack: LocalStack, sqs: Any, logical_id: str, props: dict[str, Any]) -> None:
    name = stack.resolve(props.get("QueueName")) or _name(logical_id)
    attributes: dict[str, str] = {}
    for key in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "ReceiveMessageWaitTimeSeconds"):
        if key in props:
            attributes[key] = str(stack.resolve(props[key]))
    if "RedrivePolicy" in props:
        import json

        attributes["RedrivePolicy"] = json.dumps(stack.resolve(props["RedrivePolicy"]))
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    stack.physical[logical_id] = url  # Ref of a queue is its URL
    stack.arns[logical_id] = arn
    stack.attributes.update({(logical_id, "Arn"): arn, (logical_id, "QueueUrl"): url, (logical_id, "QueueName"): name})


def _create_table(stack: LocalStack, ddb: Any, logical_id: str, props: dict[str, Any]) -> None:
    name = stack.resolve(props.get("TableName")) or _name(logical_id)
    kwargs: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
    }
    if props.get("GlobalSecondaryIndexes"):
        kwargs["GlobalSecondaryIndexes"] = stack.resolve(props["GlobalSecondaryIndexes"])
    if kwargs["BillingMode"] == "PROVISIONED":
        kwargs["ProvisionedThroughput"] = props["ProvisionedThroughput"]
    arn = ddb.create_table(**kwargs)["TableDescription"]["TableArn"]
    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        ddb.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True}
        )
    stack.physical[logical_id] = name
    stack.arns[logical_id] = arn
    stack.attributes[(logical_id, "Arn")] = arn


def _create_bucket(stack: LocalStack, s3: Any, logical_id: str, props: dict[str, Any]) -> None:
    name = stack.resolve(props.get("BucketName")) or _name(logical_id, lower=True)
    s3.create_bucket(Bucket=name)
    if "PublicAccessBlockConfiguration" in props:
        s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"])
    if "BucketEncryption" in props:
        s3.put_bucket_encryption(
            Bucket=name,
            ServerSideEncryptionConfiguration={
                "Rules": [_encryption_rule(r) for r in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]]
            },
        )
    arn = f"arn:aws:s3:::{name}"
    stack.physical[logical_id] = name
    stack.arns[logical_id] = arn
    stack.attributes.update({(logical_id, "Arn"): arn, (logical_id, "DomainName"): f"{name}.s3.amazonaws.com"})


def _encryption_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """CloudFormation and the S3 API name the default-encryption block differently."""
    out = {k: v for k, v in rule.items() if k != "ServerSideEncryptionByDefault"}
    if "ServerSideEncryptionByDefault" in rule:
        out["ApplyServerSideEncryptionByDefault"] = rule["ServerSideEncryptionByDefault"]
    return out


def _function(stack: LocalStack, logical_id: str, props: dict[str, Any]) -> Function:
    globals_ = stack.template.get("Globals", {}).get("Function", {})
    variables = {
        **globals_.get("Environment", {}).get("Variables", {}),
        **props.get("Environment", {}).get("Variables", {}),
    }
    environment = {k: "" if v is None else str(stack.resolve(v)) for k, v in variables.items()}
    routes = [
        (event["Properties"]["Method"].upper(), event["Properties"]["Path"])
        for event in props.get("Events", {}).values()
        if event.get("Type") == "HttpApi"
    ]
    queues = [
        QueueMapping(
            queue_logical_id=event["Properties"]["Queue"]["Fn::GetAtt"][0],
            batch_size=int(event["Properties"].get("BatchSize", 10)),
            report_failures="ReportBatchItemFailures" in event["Properties"].get("FunctionResponseTypes", []),
        )
        for event in props.get("Events", {}).values()
        if event.get("Type") == "SQS"
    ]
    return Function(
        queues=queues,
        logical_id=logical_id,
        code_uri=stack.root / props["CodeUri"],
        handler=props["Handler"],
        environment=environment,
        timeout=int(props.get("Timeout", globals_.get("Timeout", 3))),
        routes=routes,
    )
