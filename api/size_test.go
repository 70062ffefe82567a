package api_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"sort"
	"strings"
	"testing"
)

// maxServerMethods bounds api.Server (issue 11): access control, audit and
// hardening live in api/access, api/audit and api/harden behind small
// interfaces, so the server keeps the routes and what they share.
const maxServerMethods = 50

// TestServerMethods counts the methods declared on Server (exported or
// not, pointer or value receiver) in the package's non-test files and
// fails above maxServerMethods.
func TestServerMethods(t *testing.T) {
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, ".", func(fi fs.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	var methods []string
	for _, pkg := range pkgs {
		for _, f := range pkg.Files {
			for _, d := range f.Decls {
				fd, ok := d.(*ast.FuncDecl)
				if !ok || fd.Recv == nil || len(fd.Recv.List) == 0 {
					continue
				}
				typ := fd.Recv.List[0].Type
				if st, ok := typ.(*ast.StarExpr); ok {
					typ = st.X
				}
				if id, ok := typ.(*ast.Ident); ok && id.Name == "Server" {
					methods = append(methods, fd.Name.Name)
				}
			}
		}
	}
	if len(methods) == 0 {
		t.Fatal("found no methods on Server: is the test reading the api package?")
	}
	sort.Strings(methods)
	t.Logf("api.Server has %d methods", len(methods))
	if len(methods) > maxServerMethods {
		t.Errorf("api.Server has %d methods, more than %d: %s\nput a concern of its own behind a small interface (see api/access, api/audit, api/harden)",
			len(methods), maxServerMethods, strings.Join(methods, ", "))
	}
}
