"""What an auditor reads: the identity of what was read (identity), the
report, the restore-test result (restore_result), the verdict, the history and the
sealed evidence export (evidence, evidence_check)."""
