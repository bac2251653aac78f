"""The deployment flow: approved model -> staging -> tests -> gate -> production (blue/green).

`declaration` states it once as data; `decisions` holds the pure choices over it; `checks` tests an
endpoint through an invoke function (HTTP or SageMaker runtime); `aws` and `local` carry it out on
SageMaker or on this machine; `history` records which version is live; `flow` walks the
declaration with either of them; `templates` renders the same declaration as CloudFormation.
"""
