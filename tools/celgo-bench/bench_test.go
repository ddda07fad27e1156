// Package celgobench measures cel-go (the CEL implementation used by the
// Kubernetes API server) on the same policy and the same 8 KB AdmissionReview
// that portier's `benches/cel.rs` uses, so the two can be compared.
//
// What is timed, per review (one goroutine, one core):
//
//	Decode*  : the review JSON -> map[string]interface{} (unstructured form)
//	Eval*    : variable `containers` + the validations on an already-decoded review
//	Full*    : Decode + Eval together (bytes in -> booleans out)
//
// Programs are compiled once, outside the timed loop.
package celgobench

import (
	encjson "encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/ext"
	"github.com/google/cel-go/interpreter"
	sigsjson "sigs.k8s.io/json"
)

// Values of k8s.io/apiserver/pkg/apis/cel: PerCallLimit and CheckFrequency.
const (
	perCallLimit   = 1000000
	checkFrequency = 100
)

const variableExpr = "object.spec.template.spec.containers + object.spec.template.spec.?initContainers.orValue([])"

var tenValidations = []string{
	"variables.containers.all(c, c.image.startsWith('registry.example.com/'))",
	"variables.containers.all(c, !c.image.endsWith(':latest') && c.image.contains(':'))",
	"has(object.metadata.labels) && 'team' in object.metadata.labels",
	"object.spec.template.spec.containers.all(c, has(c.readinessProbe) && has(c.livenessProbe))",
	"variables.containers.all(c, has(c.resources.limits) && 'memory' in c.resources.limits)",
	"object.spec.template.spec.?securityContext.?runAsNonRoot.orValue(false) == true",
	"variables.containers.all(c, c.?securityContext.?allowPrivilegeEscalation.orValue(true) == false)",
	"object.spec.replicas <= 10",
	"!object.spec.template.spec.?hostNetwork.orValue(false)",
	"variables.containers.all(c, !has(c.ports) || c.ports.all(p, !has(p.hostPort)))",
}

var oneValidation = []string{"object.spec.replicas <= 10"}

// newEnv mirrors the language/runtime settings of the API server's base
// environment (k8s.io/apiserver/pkg/cel/environment/base.go, compat >= 1.29)
// minus the Kubernetes-specific function libraries (URLs, Regex, Lists, Authz,
// Quantity, IP, CIDR, Format, ...) which none of these expressions call, and
// the variable declarations of k8s.io/apiserver/pkg/admission/plugin/cel
// (object/oldObject are dyn; request is declared dyn here instead of the
// kubernetes.AdmissionRequest object type; variables is map(string, dyn)
// instead of a synthesized object type).
func newEnv() (*cel.Env, error) {
	return cel.NewEnv(
		cel.HomogeneousAggregateLiterals(),
		cel.EagerlyValidateDeclarations(true),
		cel.DefaultUTCTimeZone(true),
		cel.CrossTypeNumericComparisons(true),
		cel.OptionalTypes(),
		ext.Strings(ext.StringsVersion(2)),
		ext.Sets(),
		cel.Variable("object", cel.DynType),
		cel.Variable("oldObject", cel.DynType),
		cel.Variable("request", cel.DynType),
		cel.Variable("variables", cel.MapType(cel.StringType, cel.DynType)),
	)
}

// Program options as in the API server: base env ProgramOptions +
// InterruptCheckFrequency from admission/plugin/cel/compile.go.
var progOpts = []cel.ProgramOption{
	cel.EvalOptions(cel.OptOptimize, cel.OptTrackCost),
	cel.CostLimit(perCallLimit),
	cel.InterruptCheckFrequency(checkFrequency),
}

// Same without cost tracking (OptTrackCost makes cel-go re-plan the program on
// every Eval, since the cost observer holds per-evaluation state). For
// comparison only; the API server always tracks cost.
var progOptsNoCost = []cel.ProgramOption{
	cel.EvalOptions(cel.OptOptimize),
}

type policy struct {
	variable    cel.Program
	validations []cel.Program
}

// compile builds the policy; the ten-validation policy has the `containers`
// variable, the one-expression policy (as in portier's bench) has none.
func compile(tb testing.TB, validations []string) *policy {
	return compileWith(tb, validations, progOpts)
}

func compileWith(tb testing.TB, validations []string, opts []cel.ProgramOption) *policy {
	env, err := newEnv()
	if err != nil {
		tb.Fatal(err)
	}
	prog := func(src string) cel.Program {
		ast, iss := env.Compile(src)
		if iss.Err() != nil {
			tb.Fatalf("compile %q: %v", src, iss.Err())
		}
		p, err := env.Program(ast, opts...)
		if err != nil {
			tb.Fatalf("program %q: %v", src, err)
		}
		return p
	}
	p := &policy{}
	if len(validations) > 1 {
		p.variable = prog(variableExpr)
	}
	for _, v := range validations {
		p.validations = append(p.validations, prog(v))
	}
	return p
}

// activation is like the API server's evaluationActivation: a struct that
// resolves the root variables without building a map per evaluation.
type activation struct {
	object, oldObject, request interface{}
	variables                  interface{}
}

func (a *activation) ResolveName(name string) (interface{}, bool) {
	switch name {
	case "object":
		return a.object, true
	case "oldObject":
		return a.oldObject, true
	case "request":
		return a.request, true
	case "variables":
		return a.variables, true
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }

// Decoded review.
type review struct {
	request map[string]interface{}
}

func decodeStd(data []byte) (review, error) {
	var r map[string]interface{}
	if err := encjson.Unmarshal(data, &r); err != nil {
		return review{}, err
	}
	req, _ := r["request"].(map[string]interface{})
	return review{request: req}, nil
}

// decodeK8s uses sigs.k8s.io/json as the API server does for unstructured
// (integers stay int64 rather than float64).
func decodeK8s(data []byte) (review, error) {
	var r map[string]interface{}
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(data, &r); err != nil {
		return review{}, err
	}
	req, _ := r["request"].(map[string]interface{})
	return review{request: req}, nil
}

// eval runs the variable and validations; results go into out. `variables`
// is evaluated once per review (the API server evaluates composited variables
// lazily, at most once per admission request, and caches the result).
// Returns the number of validations that returned true.
func (p *policy) eval(rv review, out []ref.Val) int {
	act := &activation{
		object:    rv.request["object"],
		oldObject: rv.request["oldObject"],
		request:   rv.request,
	}
	if p.variable != nil {
		cv, _, err := p.variable.Eval(act)
		if err != nil {
			cv = types.WrapErr(err)
		}
		act.variables = map[string]ref.Val{"containers": cv}
	}
	ok := 0
	for i, prog := range p.validations {
		v, _, err := prog.Eval(act)
		if err != nil {
			v = types.WrapErr(err)
		}
		out[i] = v
		if v == types.True {
			ok++
		}
	}
	return ok
}

func loadReview(tb testing.TB) []byte {
	path := os.Getenv("REVIEW")
	if path == "" {
		// Run from portier's tools/celgo-bench; in the GOPATH layout of setup.sh set REVIEW.
		path = filepath.Join("..", "..", "tests", "fixtures", "review-deployment-8k.json")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("read review (set REVIEW=/path/to/review-deployment-8k.json): %v", err)
	}
	return data
}

// TestResults prints each validation's result once and checks that all are true.
func TestResults(t *testing.T) {
	data := loadReview(t)
	for _, dec := range []struct {
		name string
		f    func([]byte) (review, error)
	}{{"encoding/json", decodeStd}, {"sigs.k8s.io/json", decodeK8s}} {
		rv, err := dec.f(data)
		if err != nil {
			t.Fatal(err)
		}
		for _, set := range []struct {
			name string
			v    []string
		}{{"ten", tenValidations}, {"one", oneValidation}} {
			p := compile(t, set.v)
			out := make([]ref.Val, len(set.v))
			p.eval(rv, out)
			for i, v := range out {
				t.Logf("[%s/%s] %2d %-5v  %s", dec.name, set.name, i+1, fmtVal(v), set.v[i])
				if v != types.True {
					t.Errorf("[%s/%s] validation %d = %v, want true", dec.name, set.name, i+1, fmtVal(v))
				}
			}
		}
	}
	t.Logf("review: %d bytes", len(data))
}

func fmtVal(v ref.Val) string {
	if types.IsError(v) {
		return fmt.Sprintf("error(%v)", v)
	}
	return fmt.Sprint(v.Value())
}

var sink int

// cpuNow is the process's user+system CPU time. Run with -cpu 1 (GOMAXPROCS=1)
// so that it is the one benchmark thread plus the runtime's own (GC) work:
// a figure that, unlike wall clock, does not depend on what else runs on the
// machine, like portier's PORTIER_BENCH_CLOCK=cpu.
func cpuNow() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// timed runs body b.N times and also reports CPU ns per op.
func timed(b *testing.B, body func()) {
	b.ReportAllocs()
	b.ResetTimer()
	start := cpuNow()
	for i := 0; i < b.N; i++ {
		body()
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuNow()-start)/float64(b.N), "cpu-ns/op")
}

func benchDecode(b *testing.B, dec func([]byte) (review, error)) {
	data := loadReview(b)
	b.SetBytes(int64(len(data)))
	timed(b, func() {
		rv, err := dec(data)
		if err != nil {
			b.Fatal(err)
		}
		sink += len(rv.request)
	})
}

func benchEval(b *testing.B, validations []string, dec func([]byte) (review, error)) {
	benchEvalWith(b, validations, dec, progOpts)
}

func benchEvalWith(b *testing.B, validations []string, dec func([]byte) (review, error), opts []cel.ProgramOption) {
	data := loadReview(b)
	rv, err := dec(data)
	if err != nil {
		b.Fatal(err)
	}
	p := compileWith(b, validations, opts)
	out := make([]ref.Val, len(validations))
	if n := p.eval(rv, out); n != len(validations) {
		b.Fatalf("only %d of %d validations true", n, len(validations))
	}
	timed(b, func() { sink += p.eval(rv, out) })
}

func benchFull(b *testing.B, validations []string, dec func([]byte) (review, error)) {
	data := loadReview(b)
	p := compile(b, validations)
	out := make([]ref.Val, len(validations))
	b.SetBytes(int64(len(data)))
	timed(b, func() {
		rv, err := dec(data)
		if err != nil {
			b.Fatal(err)
		}
		if n := p.eval(rv, out); n != len(validations) {
			b.Fatalf("only %d of %d validations true", n, len(validations))
		}
	})
}

// (a) decoding alone
func BenchmarkDecode_StdJSON(b *testing.B)  { benchDecode(b, decodeStd) }
func BenchmarkDecode_SigsJSON(b *testing.B) { benchDecode(b, decodeK8s) }

// (b) evaluation on an already-decoded review
func BenchmarkEval_Ten_StdJSON(b *testing.B)  { benchEval(b, tenValidations, decodeStd) }
func BenchmarkEval_Ten_SigsJSON(b *testing.B) { benchEval(b, tenValidations, decodeK8s) }
func BenchmarkEval_One_StdJSON(b *testing.B)  { benchEval(b, oneValidation, decodeStd) }
func BenchmarkEval_One_SigsJSON(b *testing.B) { benchEval(b, oneValidation, decodeK8s) }

// (c) decode + evaluate
func BenchmarkFull_Ten_StdJSON(b *testing.B)  { benchFull(b, tenValidations, decodeStd) }
func BenchmarkFull_Ten_SigsJSON(b *testing.B) { benchFull(b, tenValidations, decodeK8s) }
func BenchmarkFull_One_StdJSON(b *testing.B)  { benchFull(b, oneValidation, decodeStd) }
func BenchmarkFull_One_SigsJSON(b *testing.B) { benchFull(b, oneValidation, decodeK8s) }

// (b') evaluation without cost tracking (not what the API server does)
func BenchmarkEvalNoCost_Ten_SigsJSON(b *testing.B) {
	benchEvalWith(b, tenValidations, decodeK8s, progOptsNoCost)
}
func BenchmarkEvalNoCost_One_SigsJSON(b *testing.B) {
	benchEvalWith(b, oneValidation, decodeK8s, progOptsNoCost)
}
