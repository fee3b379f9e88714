"""Agent runs: execute-observe-reflect loops driven by a Step Functions state machine."""
