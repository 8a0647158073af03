"""Browser end-to-end tests (a package, so the browser and the live server are torn down as soon as
these tests are done, not at the end of the whole run)."""
