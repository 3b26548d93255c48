"""The as-of views every report and page reads: ``case_questions``, ``case_sla``, ``env_uptime``, ``contract_refunds``.

``open_views(con, config, as_of)`` defines them as temporary views on one
connection or cursor, for one instant T; callers then write plain SQL against
them (and aggregate there, before anything reaches pandas or a chart). The
uptime and credits of a month closed at T are the rows frozen when it was
closed (``kb.engine.closings``); ``env_uptime_live`` and ``contract_refunds_live``
compute every month.
"""

from __future__ import annotations

from datetime import datetime

from kb.config import Config
from kb.db.sqltext import instant
from kb.engine.calendar import attach_calendar
from kb.engine.case_sla import case_sla_sql
from kb.engine.closings import live_view, open_frozen_view
from kb.engine.questions import case_questions_sql
from kb.engine.refunds import contract_refunds_sql
from kb.engine.uptime import env_uptime_sql


def open_views(con, config: Config, as_of: datetime) -> None:
    attach_calendar(con, config, as_of)
    literal = instant(as_of)
    con.execute(f"CREATE OR REPLACE TEMP VIEW case_questions AS {case_questions_sql(config, as_of)}")
    con.execute(f"CREATE OR REPLACE TEMP VIEW case_sla AS {case_sla_sql(config, as_of)}")
    con.execute(f"CREATE OR REPLACE TEMP VIEW {live_view('env_uptime')} AS {env_uptime_sql(config, literal)}")
    open_frozen_view(con, "env_uptime", literal)
    con.execute(f"CREATE OR REPLACE TEMP VIEW {live_view('contract_refunds')} AS "
                f"{contract_refunds_sql(config, literal)}")
    open_frozen_view(con, "contract_refunds", literal)
