package search

import (
	"go/ast"
	goparser "go/parser"
	"go/token"
	"reflect"
	"slices"
	"testing"
)

// allNodes holds one node of every kind; TestVisitorExhaustive checks that
// it is complete.
var allNodes = []Expr{IDIn{}, TokenIn{}, TokenText{}, StringMatch{}, DateMatch{}, NumberMatch{}, RefIn{}, URIMatch{}, Near{},
	Missing{}, CompositeMatch{}, Or{}, Not{}, Chain{}, Has{}}

// branches are the kinds that hold other expressions.
var branches = []string{"Or", "Not", "Chain", "Has"}

// recorder is a Visitor and a TreeVisitor that returns the name of the
// method called.
type recorder struct{}

func (recorder) IDIn(IDIn) string                     { return "IDIn" }
func (recorder) TokenIn(TokenIn) string               { return "TokenIn" }
func (recorder) TokenText(TokenText) string           { return "TokenText" }
func (recorder) StringMatch(StringMatch) string       { return "StringMatch" }
func (recorder) DateMatch(DateMatch) string           { return "DateMatch" }
func (recorder) NumberMatch(NumberMatch) string       { return "NumberMatch" }
func (recorder) RefIn(RefIn) string                   { return "RefIn" }
func (recorder) URIMatch(URIMatch) string             { return "URIMatch" }
func (recorder) Near(Near) string                     { return "Near" }
func (recorder) Missing(Missing) string               { return "Missing" }
func (recorder) CompositeMatch(CompositeMatch) string { return "CompositeMatch" }
func (recorder) Or(Or) string                         { return "Or" }
func (recorder) Not(Not) string                       { return "Not" }
func (recorder) Chain(Chain) string                   { return "Chain" }
func (recorder) Has(Has) string                       { return "Has" }
func (recorder) Leaf(Leaf) string                     { return "Leaf" }

// exprTypes lists the types of this package's non-test files that have an
// accept method: every kind of node Expr admits.
func exprTypes(t *testing.T) []string {
	t.Helper()
	fset := token.NewFileSet()
	pkgs, err := goparser.ParseDir(fset, ".", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for name, f := range pkgs["search"].Files {
		if len(name) > 8 && name[len(name)-8:] == "_test.go" {
			continue
		}
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Recv == nil || fd.Name.Name != "accept" {
				continue
			}
			rt := fd.Recv.List[0].Type
			if st, ok := rt.(*ast.StarExpr); ok {
				rt = st.X
			}
			out = append(out, rt.(*ast.Ident).Name)
		}
	}
	slices.Sort(out)
	return out
}

// TestVisitorExhaustive checks that every kind of node reaches the Visitor
// method of its name, and through VisitTree its branch method or Leaf, and
// that Visitor has no method for a kind that does not exist.
func TestVisitorExhaustive(t *testing.T) {
	var listed []string
	for _, e := range allNodes {
		listed = append(listed, reflect.TypeOf(e).Name())
	}
	slices.Sort(listed)
	if got := exprTypes(t); !slices.Equal(got, listed) {
		t.Fatalf("kinds of node with accept: %v; allNodes has %v", got, listed)
	}
	vt := reflect.TypeOf((*Visitor[string])(nil)).Elem()
	if vt.NumMethod() != len(allNodes) {
		t.Errorf("Visitor has %d methods for %d kinds of node", vt.NumMethod(), len(allNodes))
	}
	for _, e := range allNodes {
		name := reflect.TypeOf(e).Name()
		if got := Visit[string](e, recorder{}); got != name {
			t.Errorf("Visit(%s) called %s", name, got)
		}
		want := "Leaf"
		if slices.Contains(branches, name) {
			want = name
		}
		if got := VisitTree[string](e, recorder{}); got != want {
			t.Errorf("VisitTree(%s) called %s, want %s", name, got, want)
		}
		if _, isLeaf := e.(Leaf); isLeaf != (want == "Leaf") {
			t.Errorf("%s: implements Leaf %v, want %v", name, isLeaf, want == "Leaf")
		}
	}
}

func TestLeafParameter(t *testing.T) {
	tests := []struct {
		leaf Leaf
		want string
	}{
		{IDIn{IDs: []string{"a"}}, "_id"},
		{TokenIn{Param: "status"}, "status"},
		{DateMatch{Param: "_lastUpdated"}, "_lastUpdated"},
		{CompositeMatch{Param: "code-value-quantity"}, "code-value-quantity"},
		{Missing{Param: "end"}, "end"},
	}
	for _, tt := range tests {
		if got := tt.leaf.Parameter(); got != tt.want {
			t.Errorf("%T.Parameter() = %q, want %q", tt.leaf, got, tt.want)
		}
	}
}
