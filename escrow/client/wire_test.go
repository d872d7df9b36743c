package client

import (
	"testing"

	"github.com/afterlife-oss/afterlife/escrow"
	"github.com/afterlife-oss/afterlife/internal/testenv"
)

func TestTheUploadStatusIsReadAsTheServerWritesIt(t *testing.T) {
	testenv.SameJSON(t, fileProgress{}, escrow.FileState{}, false)
	testenv.SameJSON(t, fileStatus{}, escrow.UploadStatus{}, false)
}
