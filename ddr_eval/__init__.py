"""ddr-eval: benchmark and evaluation harness for deep degradation representations (DDR).

The pipeline, one subpackage per stage, data flowing forward only:

    suite (schema) -> data + degradations -> models -> features -> metrics -> report
"""

__version__ = "0.1.0"
