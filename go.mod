module github.com/continuum-mesh/continuum

go 1.26
