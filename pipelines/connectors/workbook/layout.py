"""The workbook export's published layout (shared/platforms/workbook.md): the sheet, where its
header row is found and the columns it must have."""

SHEET = "贫困人口明细"
HEADER_MARK = "户编号"
HEADER_SEARCH_ROWS = 50
COLUMNS = (
    "县", "乡(镇)", "行政村", "户编号", "人编号", "姓名", "证件号码", "人数", "与户主关系", "民族",
    "文化程度", "在校生状况", "健康状况", "劳动技能", "务工状况", "务工时间(月)", "参加大病医疗",
    "贫困户属性", "主要致贫原因", "其他致贫原因", "脱贫状态", "识别年度", "脱贫年度", "危房户",
    "饮水安全", "人均纯收入", "联系电话",
)  # fmt: skip
ID_COL = "证件号码"
