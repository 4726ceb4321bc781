"""What every layer of the suite shares: the errors a user can cause, the schema of every row and
run record, where files live and what sits beside them, results files read and written (and the
appending that a crash cannot damage), the progress line, the run's provenance and the machine's
state, and the paper figure under test. Imports nothing above it."""
