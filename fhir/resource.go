package fhir

import (
	"encoding/json"
	"regexp"
	"strconv"
	"time"
)

// Resource is a stored FHIR resource: the client's JSON with the server's id
// and meta written in, plus the envelope fields the store keeps beside it.
type Resource struct {
	Type        string
	ID          string
	Version     int64     // meta.versionId; 1 for the first version
	LastUpdated time.Time // meta.lastUpdated, UTC
	Deleted     bool      // a tombstone version: the resource was deleted
	JSON        []byte    // the resource as served (nil for a tombstone)
}

// ETag returns the weak entity tag of the version, W/"n".
func (r *Resource) ETag() string { return `W/"` + strconv.FormatInt(r.Version, 10) + `"` }

// Reference returns "Type/id".
func (r *Resource) Reference() string { return r.Type + "/" + r.ID }

var idPattern = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)

// ValidID reports whether id is a valid FHIR logical id.
func ValidID(id string) bool { return idPattern.MatchString(id) }

// InstantFormat is how Signpost writes instants: UTC, millisecond precision.
const InstantFormat = "2006-01-02T15:04:05.000Z07:00"

// Stamp writes id, meta.versionId and meta.lastUpdated into obj, keeping any
// other meta members the client sent (tags, profiles, security labels,
// source). It returns the encoded resource.
func Stamp(obj *Object, id string, version int64, lastUpdated time.Time) ([]byte, error) {
	obj.SetAfter("resourceType", "id", id)
	meta := &Object{vals: map[string]json.RawMessage{}}
	if raw := obj.Get("meta"); raw != nil {
		m, err := ParseObject(raw)
		if err != nil {
			return nil, Errorf(Invalid, "structure", "meta", "meta must be an object")
		}
		meta = m
	}
	meta.Delete("versionId")
	meta.Delete("lastUpdated")
	meta.keys = append([]string{"versionId", "lastUpdated"}, meta.keys...)
	vid, _ := json.Marshal(strconv.FormatInt(version, 10))
	lu, _ := json.Marshal(lastUpdated.UTC().Format(InstantFormat))
	meta.vals["versionId"] = vid
	meta.vals["lastUpdated"] = lu
	obj.SetAfter("id", "meta", json.RawMessage(meta.Bytes()))
	return obj.Bytes(), nil
}
