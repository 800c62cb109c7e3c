package storage

import "os"

// Environment variables of a second S3 credential, for a process that reads with one credential
// and writes with another: the export job reads backups with the tenant's reader credential, which
// may not write there, and stores the archive with its writer credential. The names are the usual
// AWS variables behind a prefix, so one Secret with the keys AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY serves as either.
const (
	EnvOutputAccessKeyID     = "TENANTOPS_OUTPUT_AWS_ACCESS_KEY_ID"
	EnvOutputSecretAccessKey = "TENANTOPS_OUTPUT_AWS_SECRET_ACCESS_KEY"
	EnvOutputSessionToken    = "TENANTOPS_OUTPUT_AWS_SESSION_TOKEN"
)

// OutputCredentialsFromEnv reads the second credential; ok is false when none is set.
func OutputCredentialsFromEnv() (c Credentials, ok bool) {
	c = Credentials{
		AccessKeyID:     os.Getenv(EnvOutputAccessKeyID),
		SecretAccessKey: os.Getenv(EnvOutputSecretAccessKey),
		SessionToken:    os.Getenv(EnvOutputSessionToken),
	}
	return c, c.AccessKeyID != ""
}
