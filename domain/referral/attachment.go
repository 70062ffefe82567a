package referral

import (
	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"

	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/signpost-fhir/signpost/domain/write"
	"github.com/signpost-fhir/signpost/fhir"
	"github.com/signpost-fhir/signpost/fhir/elem"
)

// MaxAttachmentBytes is the largest referral document accepted (5 MB,
// decoded).
const MaxAttachmentBytes = 5 << 20

// AllowedContentTypes are the document types a referral may carry.
var AllowedContentTypes = map[string]bool{
	"application/pdf": true, "text/plain": true, "image/jpeg": true, "image/png": true, "image/tiff": true,
	"application/msword": true, "application/rtf": true,
	"application/vnd.openxmlformats-officedocument.wordprocessingml.document": true,
}

type attachmentView struct {
	ContentType string `json:"contentType"`
	Data        string `json:"data"`
	Size        *int64 `json:"size"`
	URL         string `json:"url"`
}

// checkAttachment applies the size limit and the content-type allow-list.
func checkAttachment(at, contentType, data string, size *int64) error {
	ct := strings.TrimSpace(strings.ToLower(strings.Split(contentType, ";")[0]))
	if ct == "" {
		return fhir.Errorf(fhir.Unprocessable, "required", at+".contentType", "a referral document needs a contentType")
	}
	if !AllowedContentTypes[ct] {
		return fhir.Errorf(fhir.UnsupportedMedia, "not-supported", at+".contentType",
			"content type %q is not accepted for referral documents (accepted: PDF, plain text, JPEG, PNG, TIFF, Word, RTF)", ct).
			WithDetails("CONTENT_TYPE_NOT_ALLOWED")
	}
	n := int64(len(strings.TrimRight(data, "=")) * 3 / 4)
	if size != nil && *size > n {
		n = *size
	}
	if n > MaxAttachmentBytes {
		return fhir.Errorf(fhir.TooLarge, "too-costly", at,
			"the document is %d bytes; referral documents may be at most %d bytes (5 MB)", n, MaxAttachmentBytes).
			WithDetails("ATTACHMENT_TOO_LARGE")
	}
	return nil
}

// documentReferenceRule limits the documents linked to a referral
// (DocumentReference.context.related naming a ServiceRequest, or
// DocumentReference.basedOn): every attachment at most 5 MB, with an
// allowed content type, and the referral must exist.
func documentReferenceRule(ctx context.Context, tx *write.Tx, c *write.Change) error {
	if c.New == nil {
		return nil
	}
	var d struct {
		Context struct {
			Related []r4.Reference `json:"related"`
		} `json:"context"`
		Content []struct {
			Attachment attachmentView `json:"attachment"`
		} `json:"content"`
	}
	if err := decode(c.New.Bytes(), &d, "DocumentReference"); err != nil {
		return err
	}
	linked := false
	for i, r := range d.Context.Related {
		if typ, _, ok := fhir.SplitReference(elem.Str(r.Reference)); ok && typ == "ServiceRequest" {
			linked = true
			if _, err := readRef(ctx, tx, elem.Str(r.Reference)); err != nil {
				return fhir.Errorf(fhir.Unprocessable, "not-found", fmt.Sprintf("DocumentReference.context.related[%d]", i),
					"referral %s does not exist", elem.Str(r.Reference))
			}
		}
	}
	if !linked {
		return nil
	}
	for i, ct := range d.Content {
		a := ct.Attachment
		at := fmt.Sprintf("DocumentReference.content[%d].attachment", i)
		if err := checkAttachment(at, a.ContentType, a.Data, a.Size); err != nil {
			return err
		}
		if a.URL != "" && strings.HasPrefix(a.URL, "Binary/") {
			if _, err := readRef(ctx, tx, a.URL); err != nil {
				return fhir.Errorf(fhir.Unprocessable, "not-found", at+".url", "%s does not exist", a.URL)
			}
		}
	}
	return nil
}

// binaryRule limits Binary resources that belong to a referral
// (securityContext naming a ServiceRequest or DocumentReference) the same way.
func binaryRule(ctx context.Context, tx *write.Tx, c *write.Change) error {
	if c.New == nil {
		return nil
	}
	var b struct {
		ContentType     string       `json:"contentType"`
		Data            string       `json:"data"`
		SecurityContext r4.Reference `json:"securityContext"`
	}
	if err := json.Unmarshal(c.New.Bytes(), &b); err != nil {
		return fhir.Errorf(fhir.Invalid, "structure", "Binary", "Binary cannot be read: %v", err)
	}
	typ, _, ok := fhir.SplitReference(elem.Str(b.SecurityContext.Reference))
	if !ok || (typ != "ServiceRequest" && typ != "DocumentReference") {
		return nil
	}
	return checkAttachment("Binary", b.ContentType, b.Data, nil)
}
