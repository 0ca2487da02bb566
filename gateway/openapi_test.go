package gateway_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/coupondrop/coupon/gateway"
	"github.com/gofiber/fiber/v2"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// TestMain runs the package's tests, then, when every test ran (no -run,
// no -short) and passed, checks that the tests produced every answer the
// OpenAPI document lists: each operation's every status and, for errors,
// every code.
func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if code == 0 && !testing.Short() && flag.Lookup("test.run").Value.String() == "" {
		if missing := spec().unproduced(); len(missing) > 0 {
			fmt.Fprintf(os.Stderr, "FAIL: the OpenAPI document lists answers no test produced (test them, or drop them from gateway/openapi.json):\n  %s\n",
				strings.Join(missing, "\n  "))
			code = 1
		}
	}
	os.Exit(code)
}

// openAPISpec is gateway/openapi.json, compiled for checking answers.
type openAPISpec struct {
	doc       map[string]any
	compiler  *jsonschema.Compiler
	templates []pathTemplate

	mu       sync.Mutex
	schemas  map[string]*jsonschema.Schema
	produced map[string]bool // "METHOD /path STATUS[ code]"
}

type pathTemplate struct {
	path string
	re   *regexp.Regexp
}

var (
	specOnce sync.Once
	theSpec  *openAPISpec
	specErr  error
)

// spec loads the document once per test binary.
func spec() *openAPISpec {
	specOnce.Do(func() { theSpec, specErr = loadSpec() })
	if specErr != nil {
		panic(specErr)
	}
	return theSpec
}

func loadSpec() (*openAPISpec, error) {
	if !bytes.Equal(mustReadFile("openapi.json"), gateway.OpenAPI) {
		return nil, fmt.Errorf("gateway.OpenAPI is not openapi.json")
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(gateway.OpenAPI))
	if err != nil {
		return nil, fmt.Errorf("openapi.json: %w", err)
	}
	s := &openAPISpec{doc: doc.(map[string]any), compiler: jsonschema.NewCompiler(),
		schemas: map[string]*jsonschema.Schema{}, produced: map[string]bool{}}
	s.compiler.AssertFormat()
	if err := s.compiler.AddResource("openapi.json", doc); err != nil {
		return nil, err
	}
	param := regexp.MustCompile(`\\\{[a-zA-Z]+\\\}`)
	for p := range s.paths() {
		s.templates = append(s.templates, pathTemplate{p, regexp.MustCompile("^" + param.ReplaceAllString(regexp.QuoteMeta(p), `[^/]+`) + "$")})
	}
	// Literal paths before templated ones.
	sort.Slice(s.templates, func(i, j int) bool {
		return strings.Count(s.templates[i].path, "{") < strings.Count(s.templates[j].path, "{")
	})
	return s, nil
}

func mustReadFile(name string) []byte {
	b, err := os.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return b
}

func (s *openAPISpec) paths() map[string]any { return s.doc["paths"].(map[string]any) }

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// responsesOf returns the documented responses of method on path (nil when
// the operation is not documented), or the unmatched-route answers.
func (s *openAPISpec) responsesOf(method, path string) (key string, ptr string, responses map[string]any) {
	for _, t := range s.templates {
		if !t.re.MatchString(path) {
			continue
		}
		item := s.paths()[t.path].(map[string]any)
		if op, ok := item[strings.ToLower(method)].(map[string]any); ok {
			return method + " " + t.path, "/paths/" + escapePointer(t.path) + "/" + strings.ToLower(method) + "/responses", op["responses"].(map[string]any)
		}
		break // the path exists, not with this method: 405
	}
	return "unmatched", "/x-unmatched-routes", s.doc["x-unmatched-routes"].(map[string]any)
}

func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// check validates one real answer against the document and records it.
func (s *openAPISpec) check(method, path string, status int, contentType string, body []byte) error {
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	key, ptr, responses := s.responsesOf(method, path)
	st := fmt.Sprint(status)
	resp, ok := responses[st].(map[string]any)
	if !ok {
		return fmt.Errorf("openapi.json: %s answered %d, which %s does not document", path, status, key)
	}
	content, _ := resp["content"].(map[string]any)
	mt := strings.TrimSpace(strings.SplitN(contentType, ";", 2)[0])
	if _, ok := content[mt]; !ok && len(body) > 0 {
		return fmt.Errorf("openapi.json: %s %d answered %s, documented %v", key, status, mt, keys(content))
	}
	code := ""
	if mt == fiber.MIMEApplicationJSON {
		sch, err := s.schema(ptr + "/" + st + "/content/" + escapePointer(mt) + "/schema")
		if err != nil {
			return err
		}
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("%s %d: not JSON: %w", key, status, err)
		}
		if err := sch.Validate(v); err != nil {
			return fmt.Errorf("openapi.json: %s %d: the answer %s does not match the schema: %v", key, status, body, err)
		}
		if m, ok := v.(map[string]any); ok && status >= 400 {
			code, _ = m["error"].(string)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.produced[strings.TrimSpace(key+" "+st+" "+code)] = true
	return nil
}

func (s *openAPISpec) schema(ptr string) (*jsonschema.Schema, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sch, ok := s.schemas[ptr]; ok {
		return sch, nil
	}
	sch, err := s.compiler.Compile("openapi.json#" + ptr)
	if err != nil {
		return nil, fmt.Errorf("openapi.json: compile %s: %w", ptr, err)
	}
	s.schemas[ptr] = sch
	return sch, nil
}

// documented lists every answer the document names: "METHOD /path STATUS"
// for successes, "... STATUS code" for each error code of an error answer.
func (s *openAPISpec) documented() []string {
	var out []string
	add := func(key string, responses map[string]any) {
		for st, r := range responses {
			codes := s.errorCodes(r.(map[string]any))
			if len(codes) == 0 {
				out = append(out, key+" "+st)
			}
			for _, c := range codes {
				out = append(out, key+" "+st+" "+c)
			}
		}
	}
	for p, item := range s.paths() {
		for _, m := range httpMethods {
			if op, ok := item.(map[string]any)[m].(map[string]any); ok {
				add(strings.ToUpper(m)+" "+p, op["responses"].(map[string]any))
			}
		}
	}
	add("unmatched", s.doc["x-unmatched-routes"].(map[string]any))
	sort.Strings(out)
	return out
}

// errorCodes collects the error codes a response's schema allows: the enum
// or const of an "error" property, through $ref, allOf and anyOf.
func (s *openAPISpec) errorCodes(resp map[string]any) []string {
	content, _ := resp["content"].(map[string]any)
	js, _ := content[fiber.MIMEApplicationJSON].(map[string]any)
	var codes []string
	var walk func(v any)
	walk = func(v any) {
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		if ref, ok := m["$ref"].(string); ok {
			name := strings.TrimPrefix(ref, "#/components/schemas/")
			walk(s.doc["components"].(map[string]any)["schemas"].(map[string]any)[name])
		}
		for _, k := range []string{"allOf", "anyOf", "oneOf"} {
			for _, sub := range asSlice(m[k]) {
				walk(sub)
			}
		}
		if props, ok := m["properties"].(map[string]any); ok {
			if e, ok := props["error"].(map[string]any); ok {
				for _, c := range asSlice(e["enum"]) {
					codes = append(codes, c.(string))
				}
				if c, ok := e["const"].(string); ok {
					codes = append(codes, c)
				}
			}
		}
	}
	walk(js["schema"])
	slices.Sort(codes)
	return slices.Compact(codes)
}

func asSlice(v any) []any { s, _ := v.([]any); return s }

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// unproduced lists the documented answers no test produced.
func (s *openAPISpec) unproduced() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, d := range s.documented() {
		if !s.produced[d] {
			out = append(out, d)
		}
	}
	return out
}

// TestOpenAPIMatchesRouter: every route and method of the router is in
// the document, and the document has no operation the router lacks.
func TestOpenAPIMatchesRouter(t *testing.T) {
	cfg := gateway.DefaultConfig()
	cfg.AdminToken = testToken
	srv, err := gateway.New(cfg, gateway.Deps{Store: fuzzStore{}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	param := regexp.MustCompile(`:([a-zA-Z]+)`)
	routed := map[string]bool{}
	for _, r := range srv.App().GetRoutes(true) {
		if r.Method == fiber.MethodHead { // fiber adds HEAD to every GET
			continue
		}
		routed[r.Method+" "+param.ReplaceAllString(r.Path, "{$1}")] = true
	}
	documented := map[string]bool{}
	for p, item := range spec().paths() {
		for _, m := range httpMethods {
			if _, ok := item.(map[string]any)[m]; ok {
				documented[strings.ToUpper(m)+" "+p] = true
			}
		}
	}
	for r := range routed {
		if !documented[r] {
			t.Errorf("route %s is not in gateway/openapi.json", r)
		}
	}
	for d := range documented {
		if !routed[d] {
			t.Errorf("gateway/openapi.json documents %s, which the router does not serve", d)
		}
	}
	if len(routed) < 10 {
		t.Fatalf("only %d routes: is the scan broken?", len(routed))
	}
	// Every documented error answer names its codes in its schema.
	for _, d := range spec().documented() {
		if f := strings.Fields(d); f[0] != "unmatched" && len(f) == 3 && f[2] >= "400" {
			t.Errorf("%s: an error answer without error codes in its schema", d)
		}
	}
}

// TestOpenAPIServed: GET /openapi.json serves the checked-in document.
func TestOpenAPIServed(t *testing.T) {
	h := mustStartGateway(t, harnessOpts{})
	r := h.do("GET", "/openapi.json", nil)
	if r.status != http.StatusOK || !bytes.Equal(r.body, gateway.OpenAPI) || r.json["openapi"] != "3.1.0" {
		t.Fatalf("got %d, %d bytes", r.status, len(r.body))
	}
	var doc map[string]any
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatal(err)
	}
	// Every schema of the document compiles (a broken $ref fails here).
	for name := range doc["components"].(map[string]any)["schemas"].(map[string]any) {
		if _, err := spec().schema("/components/schemas/" + name); err != nil {
			t.Error(err)
		}
	}
}

// TestReadmeDocumentsEveryRoute: the README's API section names every
// operation of the document and shows a curl call of it.
func TestReadmeDocumentsEveryRoute(t *testing.T) {
	readme := string(mustReadFile("../README.md"))
	start, end := strings.Index(readme, "\n## API\n"), strings.Index(readme, "\n## Operator tool\n")
	if start < 0 || end < start {
		t.Fatal("the README has no API section before the Operator tool one")
	}
	api := readme[start:end]
	var curls []string
	for _, line := range strings.Split(api, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "curl ") {
			curls = append(curls, line)
		}
	}
	param := regexp.MustCompile(`\\\{[a-zA-Z]+\\\}`)
	for p, item := range spec().paths() {
		re := regexp.MustCompile(`\$GW` + param.ReplaceAllString(regexp.QuoteMeta(p), `[^/"?; ]+`) + `(["?; ]|$)`)
		for _, m := range httpMethods {
			if _, ok := item.(map[string]any)[m]; !ok {
				continue
			}
			method := strings.ToUpper(m)
			if !strings.Contains(api, "`"+method+" "+p+"`") {
				t.Errorf("the README's API section does not name `%s %s`", method, p)
			}
			found := false
			for _, c := range curls {
				hasMethod := strings.Contains(c, "-X "+method)
				if re.MatchString(c) && (hasMethod || method == "GET" && !strings.Contains(c, "-X ")) {
					found = true
				}
			}
			if !found {
				t.Errorf("the README's API section has no curl example of %s %s", method, p)
			}
		}
	}
}
