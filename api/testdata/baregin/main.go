// Command baregin is the ceiling for Signpost's read-by-id load run: a bare
// gin engine that answers GET /fhir/:type/:id with the bytes of one file,
// from memory, and the ETag Signpost would send. It lives under testdata so
// that it is never built into the product; see docs/PERFORMANCE.md.
//
//	go run ./api/testdata/baregin -addr 127.0.0.1:8091 -body patient.json
package main

import (
	"flag"
	"log"
	"net/http"
	"os"

	"github.com/gin-gonic/gin"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8091", "listen address")
	file := flag.String("body", "", "file whose bytes every read answers")
	etag := flag.String("etag", `W/"1"`, "ETag to send")
	flag.Parse()
	body, err := os.ReadFile(*file)
	if err != nil {
		log.Fatal(err)
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.GET("/fhir/:type/:id", func(c *gin.Context) {
		c.Header("ETag", *etag)
		c.Data(http.StatusOK, "application/fhir+json; charset=utf-8", body)
	})
	log.Fatal(http.ListenAndServe(*addr, r))
}
