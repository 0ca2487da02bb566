package coupon_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestReadmeListsEveryVariable: every COUPON_* environment variable the code
// reads has a row in the README's configuration table.
func TestReadmeListsEveryVariable(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	lit := regexp.MustCompile(`"(COUPON_[A-Z0-9_]+)"`)
	seen := map[string]string{}
	err = filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != "." || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range lit.FindAllSubmatch(b, -1) {
			seen[string(m[1])] = path
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) < 20 {
		t.Fatalf("found only %d variables: is the scan broken?", len(seen))
	}
	for v, path := range seen {
		if !strings.Contains(string(readme), "`"+v+"`") {
			t.Errorf("%s (read in %s) has no row in the README's configuration table", v, path)
		}
	}
}
