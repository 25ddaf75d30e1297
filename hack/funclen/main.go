// Command funclen lists the functions of the module's product code that are
// longer than a limit, so that "no function over 60 lines" (STYLE.md) is
// checked by make lint rather than by review.
//
// A function's length runs from its func line to its closing brace, both
// included. Product code is every .go file of the module except tests,
// generated files and the directories of -skip: by default hack/ (scripts and
// this tool), bench/ (the benchmarks) and e2e/ (the test ground), the tree's
// non-product parts in STYLE.md. It prints each function over the limit as
// "path:line name lines" and exits 1 when there is one.
//
//	go run ./hack/funclen [-max 60] [-skip hack,bench,e2e] [dir]
package main

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// finding is one function over the limit.
type finding struct {
	path  string
	line  int
	name  string
	lines int
}

func main() {
	maxLines := flag.Int("max", 60, "the longest function allowed, in lines")
	skip := flag.String("skip", "hack,bench,e2e", "comma-separated top-level directories that hold no product code")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: funclen [-max N] [-skip dir,...] [module dir, default .]")
		flag.PrintDefaults()
	}
	flag.Parse()
	root := "."
	if flag.NArg() > 0 {
		root = flag.Arg(0)
	}
	found, err := scan(root, *maxLines, splitList(*skip))
	if err != nil {
		fmt.Fprintln(os.Stderr, "funclen:", err)
		os.Exit(2)
	}
	for _, f := range found {
		fmt.Printf("%s:%d %s %d\n", f.path, f.line, f.name, f.lines)
	}
	if len(found) > 0 {
		os.Exit(1)
	}
}

// splitList turns "a, b,,c" into [a b c].
func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, filepath.Clean(f))
		}
	}
	return out
}

// scan walks the module at root and returns its product functions longer
// than maxLines, in path and line order, leaving out the top-level
// directories in skip.
func scan(root string, maxLines int, skip []string) ([]finding, error) {
	var found []finding
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		if d.IsDir() {
			if slices.Contains(skip, rel) || skipDir(path, rel, d.Name()) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments|parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		if ast.IsGenerated(f) {
			return nil
		}
		found = append(found, longFuncs(fset, f, filepath.ToSlash(rel), maxLines)...)
		return nil
	})
	sort.Slice(found, func(i, j int) bool {
		if found[i].path != found[j].path {
			return found[i].path < found[j].path
		}
		return found[i].line < found[j].line
	})
	return found, err
}

// skipDir tells which other directories hold no product code: testdata,
// vendor, hidden ones (.cache holds the test ground's builds) and nested
// modules (hack/tools' pins).
func skipDir(path, rel, name string) bool {
	if rel == "." {
		return false
	}
	if name == "testdata" || name == "vendor" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
		return true
	}
	_, err := os.Stat(filepath.Join(path, "go.mod"))
	return err == nil
}

// longFuncs returns the functions of f longer than maxLines, each named as
// go vet would name it: Recv.Name for a method, Name otherwise.
func longFuncs(fset *token.FileSet, f *ast.File, path string, maxLines int) []finding {
	var found []finding
	for _, decl := range f.Decls {
		fn, ok := decl.(*ast.FuncDecl)
		if !ok || fn.Body == nil {
			continue
		}
		start := fset.Position(fn.Pos()).Line
		n := fset.Position(fn.End()).Line - start + 1
		if n > maxLines {
			found = append(found, finding{path: path, line: start, name: funcName(fn), lines: n})
		}
	}
	return found
}

// funcName is Name for a function and Recv.Name for a method, the receiver's
// type without its pointer or type parameters.
func funcName(fn *ast.FuncDecl) string {
	if fn.Recv == nil || len(fn.Recv.List) == 0 {
		return fn.Name.Name
	}
	t := fn.Recv.List[0].Type
	if star, ok := t.(*ast.StarExpr); ok {
		t = star.X
	}
	switch x := t.(type) {
	case *ast.IndexExpr:
		t = x.X
	case *ast.IndexListExpr:
		t = x.X
	}
	if id, ok := t.(*ast.Ident); ok {
		return id.Name + "." + fn.Name.Name
	}
	return fn.Name.Name
}
