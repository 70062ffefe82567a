package mongo

import (
	"context"
	"testing"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/signpost-fhir/signpost/fhir/search"
	"github.com/signpost-fhir/signpost/store"
)

// TestSearchInTxWritesGuard: a search in a transaction writes the guard
// document its search names, the same one for the same search and another
// for another; a search outside a transaction writes none.
func TestSearchInTxWritesGuard(t *testing.T) {
	ctx := context.Background()
	s, err := OpenMemory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	q := func(code string) *search.Query {
		return &search.Query{Type: "Patient", Filter: []search.Expr{search.TokenIn{Param: "identifier", Codes: []string{code}}}}
	}
	if _, err := s.Search(ctx, q("a")); err != nil {
		t.Fatal(err)
	}
	guards := func() map[string]int {
		cur, err := s.col[colGuards].Find(ctx, bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		var docs []struct {
			ID string `bson:"_id"`
			N  int    `bson:"n"`
		}
		if err := cur.All(ctx, &docs); err != nil {
			t.Fatal(err)
		}
		out := map[string]int{}
		for _, d := range docs {
			out[d.ID] = d.N
		}
		return out
	}
	if g := guards(); len(g) != 0 {
		t.Fatalf("a search outside a transaction wrote guards %v", g)
	}
	for _, code := range []string{"a", "a", "b"} {
		err := s.Update(ctx, func(ctx context.Context, tx store.Tx) error {
			_, err := tx.Search(ctx, q(code))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	g := guards()
	if len(g) != 2 || g[guardKey(q("a"))] != 2 || g[guardKey(q("b"))] != 1 {
		t.Errorf("guards = %v; want %s written twice and %s once", g, guardKey(q("a")), guardKey(q("b")))
	}
}
