package evidence

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/internal/storage"
)

// Commands are the first arguments of tenant-operator that RunCommand handles.
var Commands = []string{"evidence"}

// PluginName is the binary's name as a kubectl plugin: a link of this name on PATH makes
// `kubectl tenant ...` run RunPlugin.
const PluginName = "kubectl-tenant"

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

type usageError string

func (e usageError) Error() string { return string(e) }

// Scheme holds every kind the evidence reads.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(v1alpha1.AddToScheme(s))
	utilruntime.Must(cmapi.AddToScheme(s))
	return s
}

// RunCommand runs `tenant-operator evidence`; args start with the subcommand. It returns the
// process exit status, after one line on stderr when it is not 0.
func RunCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "evidence" {
		return exit(stderr, usageError("want: tenant-operator evidence --tenant T [-o json|markdown|html]"))
	}
	return exit(stderr, runEvidence(ctx, "tenant-operator evidence", args[1:], stdout, stderr))
}

// RunPlugin runs the binary as the kubectl plugin kubectl-tenant: args are what follow
// `kubectl tenant`.
//
//	kubectl tenant evidence T [-o json|markdown|html] [--kubeconfig F]
//	kubectl tenant status [--kubeconfig F]
//	kubectl tenant restore T --backup ID|latest | --to-time RFC3339 --into NEW [--schedule S] [--in-place] [--wait]
func RunPlugin(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	const usage = "usage: kubectl tenant evidence TENANT [-o json|markdown|html] | kubectl tenant status | kubectl tenant backups TENANT | " +
		"kubectl tenant restore TENANT (--backup ID|latest | --to-time RFC3339) --into NEW [--schedule S] [--in-place] [--wait]"
	if len(args) == 0 {
		return exit(stderr, usageError(usage))
	}
	switch args[0] {
	case "evidence":
		rest := args[1:]
		if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
			rest = append([]string{"--tenant", rest[0]}, rest[1:]...)
		}
		return exit(stderr, runEvidence(ctx, "kubectl tenant evidence", rest, stdout, stderr))
	case "status":
		return exit(stderr, runStatus(ctx, args[1:], stdout, stderr))
	case "backups":
		// The evidence's backup sections, as a terminal table: what an SRE asks daily.
		rest := args[1:]
		if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
			rest = append([]string{"--tenant", rest[0]}, rest[1:]...)
		}
		return exit(stderr, runEvidence(ctx, "kubectl tenant backups", append(rest, "-o", "backups"), stdout, stderr))
	case "restore":
		return exit(stderr, runRestore(ctx, args[1:], stdout, stderr))
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return exitOK
	}
	return exit(stderr, usageError(fmt.Sprintf("unknown command %q; %s", args[0], usage)))
}

func exit(stderr io.Writer, err error) int {
	var u usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &u):
		fmt.Fprintln(stderr, "error: "+err.Error())
		return exitUsage
	}
	fmt.Fprintln(stderr, "error: "+strings.Join(strings.Fields(err.Error()), " "))
	return exitFailure
}

// connection is the flags that reach the cluster.
type connection struct {
	kubeconfig, context *string
}

func bindConnection(fs *flag.FlagSet) connection {
	return connection{
		kubeconfig: fs.String("kubeconfig", "", "kubeconfig file (default $KUBECONFIG, then ~/.kube/config, then the in-cluster service account)"),
		context:    fs.String("context", "", "kubeconfig context (default the current one)"),
	}
}

// config loads the client configuration as kubectl does: an explicit file, else $KUBECONFIG and
// ~/.kube/config, else the in-cluster service account.
func (c connection) config() (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = *c.kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: *c.context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	return cfg, nil
}

func (c connection) client() (client.Client, error) {
	cfg, err := c.config()
	if err != nil {
		return nil, err
	}
	return client.New(cfg, client.Options{Scheme: Scheme()})
}

func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func parse(fs *flag.FlagSet, name string, args []string, stderr io.Writer) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "usage: %s\n\nflags:\n", name)
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			return err
		}
		return usageError(fmt.Sprintf("%s: %v (see %s -h)", name, err, name))
	}
	if fs.NArg() > 0 {
		return usageError(fmt.Sprintf("%s: unexpected argument %q (see %s -h)", name, fs.Arg(0), name))
	}
	return nil
}

func runEvidence(ctx context.Context, name string, args []string, stdout, stderr io.Writer) error {
	fs := newFlags(name)
	tenant := fs.String("tenant", "", "the Tenant's name")
	output := fs.String("o", "markdown", "output format: markdown, json or html (one self-contained page)")
	operatorNS := fs.String("operator-namespace", envOr("POD_NAMESPACE", "tenant-operator-system"), "namespace the operator runs in, holding the storage credentials and the erasure records")
	noStorage := fs.Bool("no-storage", false, "do not read backup storage; the backup sections then rest on the Tenant's status")
	volumeRoot := fs.String("backup-volume-root", "", "where volume storage claims are mounted, one directory per claim, to read their backups (volume storage is not read without it)")
	conn := bindConnection(fs)
	if err := parse(fs, name, args, stderr); err != nil {
		return err
	}
	if *tenant == "" {
		return usageError(name + ": --tenant is required")
	}
	render := map[string]func(io.Writer, Report) error{"json": JSON, "markdown": Markdown, "md": Markdown, "html": HTML, "backups": Backups}[*output]
	if render == nil {
		return usageError(fmt.Sprintf("%s: -o %q: want markdown, json or html", name, *output))
	}
	c, err := conn.client()
	if err != nil {
		return err
	}
	src := Sources{Client: c, OperatorNamespace: *operatorNS}
	if !*noStorage {
		src.OpenStorage = StorageFromCluster(c, *operatorNS, *volumeRoot, *tenant)
	}
	r, err := Gather(ctx, src, *tenant)
	if err != nil {
		return err
	}
	return render(stdout, r)
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("kubectl tenant status")
	conn := bindConnection(fs)
	if err := parse(fs, "kubectl tenant status", args, stderr); err != nil {
		return err
	}
	c, err := conn.client()
	if err != nil {
		return err
	}
	list := &v1alpha1.TenantList{}
	if err := c.List(ctx, list); err != nil {
		return fmt.Errorf("list tenants: %w", err)
	}
	return StatusTable(stdout, list.Items, time.Now())
}

// StatusTable writes one line per tenant, from the Tenants' status: ready, backups fresh, last
// verification, uptime against the objective.
func StatusTable(w io.Writer, tenants []v1alpha1.Tenant, now time.Time) error {
	sort.Slice(tenants, func(i, j int) bool { return tenants[i].Name < tenants[j].Name })
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tREADY\tBACKUPS\tLAST BACKUP\tLAST VERIFY\tUPTIME 30D\tOBJECTIVE")
	for i := range tenants {
		t := &tenants[i]
		var lastBackup, lastVerify *time.Time
		if b := t.Status.Backups; b != nil {
			if b.LastSuccessTime != nil {
				lastBackup = &b.LastSuccessTime.Time
			}
			if b.LastVerificationTime != nil {
				lastVerify = &b.LastVerificationTime.Time
			}
		}
		objective := "99.5"
		if m := t.Spec.Monitoring; m != nil && m.Objective != "" {
			objective = m.Objective
		}
		ratio := "-"
		if u := t.Status.Uptime; u != nil && u.Ratio30d != "" {
			ratio = u.Ratio30d
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.Name, conditionCell(t, v1alpha1.ConditionReady),
			conditionCell(t, v1alpha1.ConditionBackupsFresh), ago(lastBackup, now),
			ago(lastVerify, now)+" "+conditionReason(t, v1alpha1.ConditionBackupVerified),
			ratio, objective+" "+conditionReason(t, v1alpha1.ConditionUptimeObjectiveMet))
	}
	return tw.Flush()
}

// conditionCell is "True", or "False (Reason)", or "-".
func conditionCell(t *v1alpha1.Tenant, ctype string) string {
	c := meta.FindStatusCondition(t.Status.Conditions, ctype)
	if c == nil {
		return "-"
	}
	if c.Status == "True" {
		return string(c.Status)
	}
	return fmt.Sprintf("%s (%s)", c.Status, c.Reason)
}

func conditionReason(t *v1alpha1.Tenant, ctype string) string {
	c := meta.FindStatusCondition(t.Status.Conditions, ctype)
	if c == nil {
		return "(-)"
	}
	return "(" + c.Reason + ")"
}

func ago(at *time.Time, now time.Time) string {
	if at == nil {
		return "never"
	}
	return formatAge(now.Sub(*at)) + " ago"
}

// StorageFromCluster opens a schedule's storage as the operator's verification jobs do: with the
// policy's reader credentials for the tenant (the least that lists and reads), from the operator's
// namespace. Volume storage is read under volumeRoot/<claim> when volumeRoot is set.
func StorageFromCluster(c client.Reader, operatorNamespace, volumeRoot, tenant string) func(context.Context, v1alpha1.BackupStorage) (storage.Store, error) {
	return func(ctx context.Context, s v1alpha1.BackupStorage) (storage.Store, error) {
		switch {
		case s.S3 != nil:
			// Through the agent's own LOCATION, so the report reads exactly where the jobs write.
			location, err := builders.StorageLocation(s)
			if err != nil {
				return nil, err
			}
			loc, err := storage.ParseLocation(location)
			if err != nil {
				return nil, err
			}
			name := s.S3.ReaderSecretName(tenant)
			secret := &corev1.Secret{}
			if err := c.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: name}, secret); err != nil {
				return nil, fmt.Errorf("get storage credentials %s/%s: %w", operatorNamespace, name, err)
			}
			store, err := storage.OpenS3(ctx, loc, storage.Credentials{
				AccessKeyID:     string(secret.Data["AWS_ACCESS_KEY_ID"]),
				SecretAccessKey: string(secret.Data["AWS_SECRET_ACCESS_KEY"]),
			})
			if err != nil {
				return nil, err
			}
			return store, nil
		case s.Volume != nil:
			if volumeRoot == "" {
				return nil, &storage.UnreachableError{Location: "volume " + s.Volume.ClaimName, Err: errors.New("not read: give --backup-volume-root where the claim is mounted")}
			}
			store, err := storage.OpenVolume(filepath.Join(volumeRoot, s.Volume.ClaimName))
			if err != nil {
				return nil, err
			}
			return store, nil
		}
		return nil, errors.New("storage names neither s3 nor volume")
	}
}
