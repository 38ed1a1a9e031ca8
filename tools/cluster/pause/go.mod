module fnlk/tools/pause

go 1.24
