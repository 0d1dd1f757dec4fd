%define api.pure full
%locations
%{
#include <stdio.h>
%}
%code provides {
int yylex(YYSTYPE *lval, YYLTYPE *lloc, void *scanner);
void yyerror(YYLTYPE *lloc, void *scanner, const char *msg);
}
%param {void *scanner}
%token END
%%
file: %empty ;
%%
void yyerror(YYLTYPE *lloc, void *scanner, const char *msg) { (void)lloc; (void)scanner; (void)msg; }
