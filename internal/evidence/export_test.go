package evidence

import "testing"

// ValidateJSON checks a report's JSON against docs/evidence.schema.json, for the envtest.
func ValidateJSON(t *testing.T, data []byte) error { return validateAgainstSchema(t, data) }
