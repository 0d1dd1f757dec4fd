#include "frontend/frontend.h"
Graph *fe_compile(const char *path, const FrontendOptions *o, Diag *d) { (void)path; (void)o; diag_fatal(d, "not yet"); return NULL; }
