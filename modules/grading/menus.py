"""Menu items of the grading module."""
from core.api import MenuItem

ALL = (
    MenuItem("grading.index", {"zh_CN": "客户分级", "en": "Customer grading"}, "grading.index", "grading.view", 20),
)
