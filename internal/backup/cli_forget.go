package backup

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/datakey"
	"github.com/tenantops/tenant-operator/internal/storage"
)

func runForget(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newCommand("forget", "forget --storage LOCATION... --tenant T --tenant-uid UID --data-key DIR --dsn URL --call SCHEMA.FUNCTION --subject ID --request NAME/UID [--signing-key-file F]", stderr)
	var locations stringList
	fs.Var(&locations, "storage", "every storage location of the tenant's schedules (repeatable): each gets the ledger entry")
	tenant := fs.String("tenant", "", "tenant name")
	tenantUID := fs.String("tenant-uid", "", "UID of the Tenant object: the ledger is its own")
	dataKeyDir := fs.String("data-key", "", "directory holding the tenant's data key (files "+datakey.FileRecipient+" and "+datakey.FileWrapped+"): the entry is sealed to it")
	dsn := fs.String("dsn", "", "the live database, as the application's role, postgres://USER@HOST:PORT/DB (the password from PGPASSWORD)")
	call := fs.String("call", "", "the application's erasure function, schema-qualified (app.forget): called as SELECT SCHEMA.FUNCTION($1) with the subject bound")
	subject := fs.String("subject", "", "the data subject's id, the function's one argument")
	request := fs.String("request", "", "the ErasureRequest this carries out, NAME/UID")
	signingKeyFile := fs.String("signing-key-file", os.Getenv(envSigningKeyFile), "Ed25519 private key (PKCS #8 PEM) that signs the ledger entry (default $"+envSigningKeyFile+"); without it the entry is unsigned and restores refuse it unless given --allow-unsigned")
	terminationLog := fs.String("termination-log", "", "write the ledger entry's key here once recorded (a pod's /dev/termination-log)")
	verbose := fs.Bool("v", false, "print progress on stderr")
	if err := fs.parse(args); err != nil {
		return err
	}
	if err := fs.required("tenant", "tenant-uid", "data-key", "dsn", "call", "subject", "request"); err != nil {
		return err
	}
	if len(locations) == 0 {
		return usageError("forget: --storage is required (see tenant-operator forget -h)")
	}
	if err := catalog.ValidFunction(*call); err != nil {
		return usageError("forget: --call: " + err.Error())
	}
	if err := catalog.ValidSubject(*subject); err != nil {
		return usageError("forget: --subject: " + err.Error())
	}
	key, err := datakey.ReadDir(*dataKeyDir)
	if err != nil {
		return err
	}
	var signingKey ed25519.PrivateKey
	if *signingKeyFile != "" {
		data, err := os.ReadFile(*signingKeyFile)
		if err != nil {
			return fmt.Errorf("read signing key: %w", err)
		}
		if signingKey, err = catalog.ParseSigningKey(data); err != nil {
			return fmt.Errorf("%s: %w", *signingKeyFile, err)
		}
	}
	var stores []storage.Store
	for _, loc := range locations {
		store, err := storage.Open(ctx, loc)
		if err != nil {
			return err
		}
		stores = append(stores, store)
	}
	res, err := Forget(ctx, ForgetOptions{Stores: stores, Tenant: *tenant, TenantUID: *tenantUID, DataKey: key, DSN: *dsn,
		Function: *call, Subject: *subject, Request: *request, SigningKey: signingKey, Log: progress(*verbose, stderr)})
	if err != nil {
		// The database's own words may quote the subject (invalid input syntax for type ...):
		// it is personal data, and stays out of logs and statuses.
		return fmt.Errorf("%s", strings.ReplaceAll(err.Error(), *subject, "<subject>"))
	}
	if signingKey == nil {
		fmt.Fprintf(stderr, "warning: the ledger entry of %s is not signed (no --signing-key-file); restores refuse it unless given --allow-unsigned\n", *request)
	}
	if *terminationLog != "" {
		if err := os.WriteFile(*terminationLog, []byte(res.Keys[0]), 0o644); err != nil {
			fmt.Fprintf(stderr, "warning: write %s: %v\n", *terminationLog, err)
		}
	}
	fmt.Fprintf(stdout, "erasure request %s: %s carried out at %s and recorded in the ledger of %d storage locations\n",
		*request, *call, res.Entry.Time.Format("2006-01-02T15:04:05.000000000Z07:00"), len(res.Keys))
	fmt.Fprintln(stdout, res.Keys[0])
	return nil
}
