"""The auditors' and finance's toolkit (issue 4): journal and trial balance, explain, diff,
reconcile, tamper evidence, opportunities, period close, what-if and the evidence pack.

Each tool is a module here with the computation (returning plain dataclasses, `Decimal` money)
and a CLI module `cli_*.py` whose `register(app)` adds its commands to `rebate-ledger`.
Output in the three formats goes through `ledger.audit.output`.
"""
