package chart

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// dockerStage is one FROM of a Dockerfile with its instructions, continuation lines joined.
type dockerStage struct {
	from, name   string
	instructions []string
}

// parseDockerfile splits a Dockerfile into stages; comments and blank lines are dropped.
func parseDockerfile(data []byte) []dockerStage {
	var stages []dockerStage
	var current strings.Builder
	flush := func() {
		line := strings.Join(strings.Fields(current.String()), " ")
		current.Reset()
		if line == "" {
			return
		}
		if fields := strings.Fields(line); strings.EqualFold(fields[0], "FROM") {
			s := dockerStage{from: fields[1]}
			if len(fields) == 4 && strings.EqualFold(fields[2], "AS") {
				s.name = fields[3]
			}
			stages = append(stages, s)
			return
		}
		if len(stages) > 0 {
			stages[len(stages)-1].instructions = append(stages[len(stages)-1].instructions, line)
		}
	}
	for _, raw := range strings.Split(string(data), "\n") {
		line := strings.TrimSpace(raw)
		if strings.HasPrefix(line, "#") {
			continue
		}
		if rest, ok := strings.CutSuffix(line, `\`); ok {
			current.WriteString(rest + " ")
			continue
		}
		current.WriteString(line)
		flush()
	}
	flush()
	return stages
}

// makeRecipe returns the recipe lines of a Makefile target.
func makeRecipe(data []byte, target string) []string {
	var recipe []string
	in := false
	for _, line := range strings.Split(string(data), "\n") {
		switch {
		case strings.HasPrefix(line, target+":"):
			in = true
		case in && strings.HasPrefix(line, "\t"):
			recipe = append(recipe, strings.TrimSpace(line))
		case in:
			return recipe
		}
	}
	return recipe
}

var goBuild = regexp.MustCompile(`^(.*\bgo build\b.*)-o (\S+)(.*)$`)

// normalizeBuild splits a go build command around its -o argument, which differs (bin/ locally,
// /out in the image), keeping the output's file name.
func normalizeBuild(t *testing.T, cmd string) (string, string) {
	t.Helper()
	m := goBuild.FindStringSubmatch(cmd)
	if m == nil {
		t.Fatalf("no 'go build ... -o OUTPUT' in %q", cmd)
	}
	return strings.Join(strings.Fields(m[1]+" -o OUTPUT"+m[3]), " "), filepath.Base(m[2])
}

// TestDockerfile checks that the image is built with the same command as `make build`, so that CI
// running make build proves the Dockerfile's build step; that the builder's Go is go.mod's; and
// that both images run as the non-root user 65532, the operator on distroless static.
func TestDockerfile(t *testing.T) {
	root := repoRoot(t)
	dockerfile, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	stages := parseDockerfile(dockerfile)
	byName := map[string]dockerStage{}
	for _, s := range stages {
		byName[s.name] = s
	}

	builder, ok := byName["builder"]
	if !ok {
		t.Fatalf("no builder stage in %+v", stages)
	}
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if goVersion == nil || builder.from != "golang:"+string(goVersion[1]) {
		t.Errorf("builder is FROM %s, go.mod says go %s", builder.from, goVersion[1])
	}
	var dockerBuild []string
	for _, in := range builder.instructions {
		if strings.HasPrefix(in, "RUN ") && strings.Contains(in, "go build") {
			dockerBuild = append(dockerBuild, strings.TrimPrefix(in, "RUN "))
		}
	}
	var makeBuild []string
	for _, line := range makeRecipe(makefile, "build") {
		if strings.Contains(line, "go build") {
			makeBuild = append(makeBuild, line)
		}
	}
	if len(dockerBuild) != 1 || len(makeBuild) != 1 {
		t.Fatalf("want one go build in the Dockerfile's builder and in make build, got %q and %q", dockerBuild, makeBuild)
	}
	dcmd, dout := normalizeBuild(t, dockerBuild[0])
	mcmd, mout := normalizeBuild(t, makeBuild[0])
	if dcmd != mcmd || dout != mout {
		t.Errorf("the Dockerfile builds with\n  %s (-o .../%s)\nmake build with\n  %s (-o .../%s)", dcmd, dout, mcmd, mout)
	}
	if !strings.HasPrefix(dcmd, "CGO_ENABLED=0 ") {
		t.Errorf("the build must be static (CGO_ENABLED=0) for distroless static: %s", dcmd)
	}

	// The default target is the last stage.
	operator := stages[len(stages)-1]
	if operator.from != "gcr.io/distroless/static:nonroot" {
		t.Errorf("the operator's image is FROM %s, want gcr.io/distroless/static:nonroot", operator.from)
	}
	agent, ok := byName["agent"]
	if !ok {
		t.Fatal("no agent stage")
	}
	for _, s := range []dockerStage{operator, agent} {
		var user string
		for _, in := range s.instructions {
			if u, ok := strings.CutPrefix(in, "USER "); ok {
				user = u
			}
		}
		if user != "65532" && !strings.HasPrefix(user, "65532:") {
			t.Errorf("stage %s runs as %q, want 65532", s.name, user)
		}
		if !slices.ContainsFunc(s.instructions, func(in string) bool {
			return strings.HasPrefix(in, "COPY --from=builder /out/"+dout+" ")
		}) {
			t.Errorf("stage %s does not copy the binary the builder built", s.name)
		}
	}
	if !bytes.Contains(dockerfile, []byte("postgresql-$major")) {
		t.Error("the agent image must install PostgreSQL (pg_dump, pg_restore, and the server for restore drills)")
	}
}
