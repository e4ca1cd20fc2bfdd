"""Named queries over a case database, one module per subject, for callers that must not write SQL.

The UI (``ui/``) reads and writes the case only through these functions and the other
``vidpipe.store`` modules (audit, decision_log): a view says *what* it needs, the SQL lives here,
next to the schema it depends on. Functions take the caller's connection and never open or commit
a transaction of their own unless their docstring says so; callers group writes with
``casedb.transaction``.
"""
