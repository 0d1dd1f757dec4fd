#include "frontend/frontend.h"
int main(void) { return 0; }
