"""Representation distillation (Section 2): the frozen teacher, the distilled student, and the
run layout that the probe and evaluation stages read."""
from featcon.distill.runs import (check_stage, model_variables, start_stage, validate_config,
                                  write_run_info)
from featcon.distill.student import (distill, distill_loss, distill_step,
                                     init_attention_from_teacher)
from featcon.distill.teacher import teacher_variables
