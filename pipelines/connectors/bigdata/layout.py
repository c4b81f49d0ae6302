"""The 洛南 big-data platform's published record layouts (shared/platforms/bigdata.md): what the
client checks on every page and what the normaliser reads."""

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
