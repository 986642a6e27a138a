"""Insurance and money: payer_plan_period from coverages, cost from claims and pharmacy claims."""

from __future__ import annotations

from healthsim_state.analytics.omop import concepts as c
from healthsim_state.analytics.omop.ids import join_id, key
from healthsim_state.analytics.omop.load import Target
from healthsim_state.analytics.omop.person import PERSONS
from healthsim_state.analytics.omop.scope import in_scope, text, utc_date

COST_COLUMNS = (
    "cost_event_id",
    "cost_domain_id",
    "cost_type_concept_id",
    "currency_concept_id",
    "total_charge",
    "total_cost",
    "total_paid",
    "paid_by_payer",
    "paid_by_patient",
    "paid_patient_copay",
    "paid_patient_coinsurance",
    "paid_patient_deductible",
    "paid_by_primary",
    "paid_ingredient_cost",
    "paid_dispensing_fee",
    "payer_plan_period_id",
    "amount_allowed",
    "revenue_code_concept_id",
    "revenue_code_source_value",
    "drg_concept_id",
    "drg_source_value",
)


def payer_plan_period(schema: str) -> Target:
    """One period per coverage; an open coverage ends at the member's coverage end, else today.

    No period runs past its person's death: Synthea's payer transitions run
    to the end of the plan year whenever the patient died.
    """
    columns = (
        "person_id",
        "payer_plan_period_start_date",
        "payer_plan_period_end_date",
        "payer_concept_id",
        "payer_source_value",
        "payer_source_concept_id",
        "plan_concept_id",
        "plan_source_value",
        "plan_source_concept_id",
        "sponsor_concept_id",
        "sponsor_source_value",
        "sponsor_source_concept_id",
        "family_source_value",
        "stop_reason_concept_id",
        "stop_reason_source_value",
        "stop_reason_source_concept_id",
    )
    start = utc_date("v.period_start")
    end = f"coalesce({utc_date('v.period_end')}, m.coverage_end, CURRENT_DATE)"
    end = f"greatest(CASE WHEN d.death_date < {end} THEN d.death_date ELSE {end} END, {start})"
    select = (
        f"SELECT {key('v.id')}, v.id, 0, pm.id, {start}, {end}, 0, {text('v.payer_id', 50)}, 0, "
        f"CAST(NULL AS integer), {text('m.plan_code', 50)}, CAST(NULL AS integer), CAST(NULL AS integer), "
        f"{text('m.group_id', 50)}, CAST(NULL AS integer), {text('v.subscriber_id', 50)}, "
        "CAST(NULL AS integer), CAST(NULL AS varchar), CAST(NULL AS integer) "
        f"FROM coverages v JOIN members m ON m.id = v.member_uuid JOIN {PERSONS} h ON h.entity_id = v.member_uuid "
        f"{join_id(schema, 'person', 'pm', 'h.person_key')} "
        f"LEFT JOIN {schema}.death d ON d.person_id = pm.id "
        f"WHERE {in_scope('v', 'coverage')}"
    )
    return Target("payer_plan_period", "payer_plan_period_id", columns, select)


def _plan_period(schema: str, person: str, day: str) -> str:
    """SQL for the first payer plan period of ``person`` that covers ``day``."""
    return (
        f"(SELECT min(p.payer_plan_period_id) FROM {schema}.payer_plan_period p WHERE p.person_id = {person} "
        f"AND {day} BETWEEN p.payer_plan_period_start_date AND p.payer_plan_period_end_date)"
    )


def cost(schema: str) -> Target:
    """A claim's totals as the cost of its visit; a pharmacy claim's as the cost of its drug exposure."""
    none = "CAST(NULL AS numeric)"
    claims = (
        f"SELECT 'claim:' || {key('k.id')}, k.id, 0, v.id, 'Visit', {c.CLAIM}, {c.USD}, k.total_charge, {none}, "
        f"k.total_paid, k.total_paid, k.member_responsibility, {none}, {none}, {none}, {none}, {none}, {none}, "
        f"{_plan_period(schema, 'vo.person_id', 'k.service_date')}, k.total_allowed, CAST(NULL AS integer), "
        "CAST(NULL AS varchar), CAST(NULL AS integer), CAST(NULL AS varchar) "
        f"FROM claims k JOIN {schema}.hs_id_map v ON v.omop_table = 'visit_occurrence' "
        f"AND v.source_key = 'claim:' || {key('k.id')} "
        f"JOIN {schema}.visit_occurrence vo ON vo.visit_occurrence_id = v.id "
        f"WHERE {in_scope('k', 'claim')}"
    )
    pharmacy = (
        f"SELECT 'pharmacy:' || {key('x.id')}, x.id, 0, d.id, 'Drug', {c.PHARMACY_CLAIM}, {c.USD}, "
        f"x.gross_amount_due, {none}, x.gross_amount_due - coalesce(x.patient_pay_amount, 0), "
        f"x.gross_amount_due - coalesce(x.patient_pay_amount, 0), x.patient_pay_amount, {none}, {none}, {none}, "
        f"{none}, x.ingredient_cost_submitted, x.dispensing_fee_submitted, "
        f"{_plan_period(schema, 'de.person_id', 'x.service_date')}, {none}, CAST(NULL AS integer), "
        "CAST(NULL AS varchar), CAST(NULL AS integer), CAST(NULL AS varchar) "
        f"FROM pharmacy_claims x JOIN {schema}.hs_id_map d ON d.omop_table = 'drug_exposure' "
        f"AND d.source_key = {key('x.id')} "
        f"JOIN {schema}.drug_exposure de ON de.drug_exposure_id = d.id "
        f"WHERE {in_scope('x', 'pharmacy_claim')}"
    )
    return Target("cost", "cost_id", COST_COLUMNS, f"{claims} UNION ALL {pharmacy}")
