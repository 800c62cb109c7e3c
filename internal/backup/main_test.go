package backup_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tenantops/tenant-operator/internal/backup"
)

// The test binary doubles as the agent: with TENANTOPS_AGENT=1 it runs RunCommand on its
// arguments, as main does. Tests run the agent as a separate process so that exit statuses,
// stdout/stderr, environment and signals are the real ones, and so that an upload can be killed.
func TestMain(m *testing.M) {
	if os.Getenv("TENANTOPS_AGENT") == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		code := backup.RunCommand(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	code := func() int {
		// The agent runs as root here, and a restorer it starts runs as the postgres user, who
		// cannot enter go test's private build directory: the agent runs from a copy it can reach.
		dir, err := os.MkdirTemp("", "tenantops-agent-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		agentBinary = filepath.Join(dir, "tenant-operator")
		if err := copyExecutable(os.Args[0], agentBinary); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// agentBinary is this test binary, copied where any user can run it.
var agentBinary string

func copyExecutable(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// result of one agent run.
type result struct {
	code           int
	stdout, stderr string
}

// lastLine is the last line of stdout, where backup prints the new id.
func (r result) lastLine() string {
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	return lines[len(lines)-1]
}

// agentCmd prepares the agent with the given extra environment.
func agentCmd(env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(agentBinary, args...)
	cmd.Env = append(append(os.Environ(), "TENANTOPS_AGENT=1"), env...)
	return cmd
}

// agent runs the agent to completion.
func agent(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := agentCmd(env, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start agent: %v", err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(3 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatalf("agent %s did not finish in 3 minutes", args[0])
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}

// mustAgent runs the agent and fails the test unless it succeeds.
func mustAgent(t *testing.T, env []string, args ...string) result {
	t.Helper()
	r := agent(t, env, args...)
	if r.code != 0 {
		t.Fatalf("agent %s exited %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// failAgent runs the agent, expects it to fail with one stderr line starting "error: " and containing
// want, and returns that line.
func failAgent(t *testing.T, env []string, want string, args ...string) string {
	t.Helper()
	r := agent(t, env, args...)
	if r.code == 0 {
		t.Fatalf("agent %s succeeded, want failure %q\nstdout: %s", strings.Join(args, " "), want, r.stdout)
	}
	line := strings.TrimSuffix(r.stderr, "\n")
	if strings.Contains(line, "\n") || !strings.HasPrefix(line, "error: ") || !strings.Contains(line, want) {
		t.Fatalf("agent %s: stderr %q, want one \"error: \" line containing %q", strings.Join(args, " "), r.stderr, want)
	}
	return line
}
