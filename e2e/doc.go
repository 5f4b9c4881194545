// Package e2e holds the tests of the whole eventshop stack: the Docker Compose file and the
// image recipe checked against the services' code (no Docker engine needed), and the
// end-to-end test of the running system.
package e2e
