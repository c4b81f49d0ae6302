"""The 洛南 big-data platform's published record layouts (shared/platforms/bigdata.md): what the
client checks on every page and what the normaliser reads."""

from pipelines.connectors.parsing import Layout, Read

#: API entity name -> canonical entity name, in dependency order (parents first).
ENTITIES: dict[str, str] = {
    "regions": "region",
    "households": "household",
    "members": "person",
    "measures": "measure",
    "loans": "loan",
    "projects": "project",
    "cadres": "cadre",
    "household-cadres": "household_cadre",
}
#: The documented record layouts: every item must carry these keys (values may be null).
FIELDS: dict[str, tuple[str, ...]] = {
    "regions": (
        "id", "code", "name", "level", "parentCode", "poorVillage", "poorVillageExitYear",
        "updatedAt",
    ),
    "households": (
        "id", "householdNo", "villageCode", "headMemberNo", "attribute", "status", "mainCause",
        "otherCauses", "identifiedYear", "exitYear", "relapseYear", "incomePerCapita",
        "memberCount", "housingSafe", "waterSafe", "phone", "updatedAt",
    ),
    "members": (
        "id", "memberNo", "householdNo", "name", "idNo", "sex", "birthDate", "relation",
        "ethnicity", "education", "schoolStatus", "health", "laborSkill", "workStatus",
        "workMonths", "seriousIllnessInsured", "updatedAt",
    ),
    "measures": ("id", "householdNo", "category", "year", "amount", "description", "updatedAt"),
    "loans": (
        "id", "householdNo", "lender", "principal", "issuedOn", "termMonths", "annualRate",
        "interestSubsidy", "status", "updatedAt",
    ),
    "projects": (
        "id", "villageCode", "category", "name", "budget", "disbursed", "status", "startOn",
        "endOn", "householdsBenefited", "updatedAt",
    ),
    "cadres": (
        "id", "name", "idNo", "sex", "phone", "unitName", "unitType", "firstSecretary",
        "residentTeam", "updatedAt",
    ),
    "household-cadres": ("id", "householdNo", "cadreId", "since", "updatedAt"),
}  # fmt: skip
DELETION_FIELDS = ("entity", "id", "deletedAt")

#: Every record's own id (``source_key``) and ``updatedAt`` (ISO-8601 with an offset).
ID = Read("id")
UPDATED_AT = Read("updatedAt", "iso_timestamp")
#: Canonical column ← record field and parser, per canonical entity
#: (``parsing.layout_columns``; coded values are the platform's two-digit codes, yes/no real
#: JSON booleans, lists JSON arrays). A household's town is its village's.
CANONICAL: dict[str, Layout] = {
    "region": {
        "code": Read("code"),
        "level": Read("level"),
        "name": Read("name"),
        "parent_code": Read("parentCode"),
        "is_poor_village": Read("poorVillage", "boolean"),
        "poor_village_exit_year": Read("poorVillageExitYear", "integer"),
        "source_key": ID,
        "source_updated_at": UPDATED_AT,
    },
    "household": {
        "household_no": Read("householdNo"),
        "village_code": Read("villageCode"),
        "head_person_no": Read("headMemberNo"),
        "poverty_attribute": Read("attribute", "code"),
        "poverty_status": Read("status", "code"),
        "main_cause": Read("mainCause", "code"),
        # Codes carry no label variants (因婚/因丧 only occur in label-based exports).
        "main_cause_label": None,
        "other_causes": Read("otherCauses", "code_list"),
        "identified_year": Read("identifiedYear", "integer"),
        "exit_year": Read("exitYear", "integer"),
        "relapse_year": Read("relapseYear", "integer"),
        "income_per_capita": Read("incomePerCapita", "number"),
        "member_count": Read("memberCount", "integer"),
        "housing_safe": Read("housingSafe", "boolean"),
        "water_safe": Read("waterSafe", "boolean"),
        "phone": Read("phone"),
        "source_key": ID,
        "source_updated_at": UPDATED_AT,
    },
    "person": {
        "person_no": Read("memberNo"),
        "household_no": Read("householdNo"),
        "name": Read("name"),
        "id_number": Read("idNo"),
        "sex": Read("sex", "code"),
        "birth_date": Read("birthDate", "date"),
        "relation_to_head": Read("relation", "code"),
        "ethnicity": Read("ethnicity", "code"),
        "education": Read("education", "code"),
        "school_status": Read("schoolStatus", "code"),
        "health": Read("health", "code_list"),
        "labor_skill": Read("laborSkill", "code"),
        "work_status": Read("workStatus", "code"),
        "work_months": Read("workMonths", "integer"),
        "serious_illness_insured": Read("seriousIllnessInsured", "boolean"),
        "source_key": ID,
        "source_updated_at": UPDATED_AT,
    },
    "measure": {
        "measure_id": ID,
        "household_no": Read("householdNo"),
        "category": Read("category", "code"),
        "year": Read("year", "integer"),
        "amount": Read("amount", "number"),
        "description": Read("description"),
        "source_key": ID,
        "source_updated_at": UPDATED_AT,
    },
    "loan": {
        "loan_id": ID,
        "household_no": Read("householdNo"),
        "lender": Read("lender"),
        "principal": Read("principal", "number"),
        "issued_on": Read("issuedOn", "date"),
        "term_months": Read("termMonths", "integer"),
        "annual_rate": Read("annualRate", "number"),
        "interest_subsidy": Read("interestSubsidy", "number"),
        "status": Read("status", "code"),
        "source_key": ID,
        "source_updated_at": UPDATED_AT,
    },
    "project": {
        "project_id": ID,
        "village_code": Read("villageCode"),
        "category": Read("category", "code"),
        "name": Read("name"),
        "budget": Read("budget", "number"),
        "disbursed": Read("disbursed", "number"),
        "status": Read("status", "code"),
        "start_on": Read("startOn", "date"),
        "end_on": Read("endOn", "date"),
        "households_benefited": Read("householdsBenefited", "integer"),
        "source_key": ID,
        "source_updated_at": UPDATED_AT,
    },
    "cadre": {
        "cadre_id": ID,
        "name": Read("name"),
        "id_number": Read("idNo"),
        "sex": Read("sex", "code"),
        "phone": Read("phone"),
        "unit_name": Read("unitName"),
        "unit_type": Read("unitType", "code"),
        "is_first_secretary": Read("firstSecretary", "boolean"),
        "is_resident_team": Read("residentTeam", "boolean"),
        "source_key": ID,
        "source_updated_at": UPDATED_AT,
    },
    "household_cadre": {
        "household_no": Read("householdNo"),
        "cadre_id": Read("cadreId"),
        "since": Read("since", "date"),
        "source_key": ID,
        "source_updated_at": UPDATED_AT,
    },
}
