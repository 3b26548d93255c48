"""The as-of views every report and page reads: ``case_questions``, ``case_sla``, ``env_uptime``, ``contract_refunds``.

``open_views(con, config, as_of)`` defines them as temporary views on one
connection or cursor, for one instant T; callers then write plain SQL against
them (and aggregate there, before anything reaches pandas or a chart).
"""

from __future__ import annotations

from datetime import datetime

from kb.config import Config
from kb.db.sqltext import instant
from kb.engine.calendar import attach_calendar
from kb.engine.case_sla import case_sla_sql
from kb.engine.questions import case_questions_sql
from kb.engine.refunds import contract_refunds_sql
from kb.engine.uptime import env_uptime_sql


def open_views(con, config: Config, as_of: datetime) -> None:
    attach_calendar(con, config, as_of)
    literal = instant(as_of)
    con.execute(f"CREATE OR REPLACE TEMP VIEW case_questions AS {case_questions_sql(config, as_of)}")
    con.execute(f"CREATE OR REPLACE TEMP VIEW case_sla AS {case_sla_sql(config, as_of)}")
    con.execute(f"CREATE OR REPLACE TEMP VIEW env_uptime AS {env_uptime_sql(config, literal)}")
    con.execute(f"CREATE OR REPLACE TEMP VIEW contract_refunds AS {contract_refunds_sql(config, literal)}")
