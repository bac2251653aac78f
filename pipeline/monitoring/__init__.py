"""What happens after a monitoring run: its metrics go to CloudWatch and, when it found violations,
one alert goes to the project's EventBridge bus, whose rule routes it to a queue.

`declaration` names the bus, rule, queue, schedule and the alert's event pattern once; `metrics`
puts a run's figures to CloudWatch; `alerts` reads `constraint_violations.json` and puts the event;
`publish` does both for one run; `templates` renders the same declaration as CloudFormation.
"""
