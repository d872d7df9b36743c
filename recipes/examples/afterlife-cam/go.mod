module afterlife.example/cam

go 1.26
