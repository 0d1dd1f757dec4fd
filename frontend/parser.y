/* parser.y: the grammar of kiln's model language.
 *
 * A pure (reentrant) LALR(1) parser with locations; it only builds the syntax tree (frontend.h).
 * Names, shapes and types are checked later, in lower.c, so the grammar stays small. Syntax errors
 * are reported as file:line:col: error: ... with bison's expected-token list; the parser recovers at
 * the end of the statement (the `error sep` rule) so one run reports every broken statement.
 *
 * Precedence, loosest first: comparisons, + -, * / % @, unary -, **, then calls, indexing and
 * attributes. As in Python, -x ** 2 is -(x ** 2).
 */
%define api.pure full
%define parse.error detailed
%locations
%param {void *scanner}
%parse-param {ParseState *ps}

%code requires {
#include "frontend/frontend.h"
#include <string.h>
}

%union {
    int64_t i;
    double f;
    const char *s;
    Ast *ast;
}

%code provides {
int yylex(YYSTYPE *lval, YYLTYPE *lloc, void *scanner);
void yyerror(YYLTYPE *lloc, void *scanner, ParseState *ps, const char *msg);
}

%code {
#define LOC(l) ((SrcLoc){ps->file, (l).first_line, (l).first_column})
static Ast *mk(ParseState *ps, AstKind k, YYLTYPE l) { return ast_new(ps, k, LOC(l)); }
static Ast *binary(ParseState *ps, int op, Ast *a, Ast *b, YYLTYPE l)
{
    Ast *n = mk(ps, AST_BINARY, l);
    n->op = op;
    n->a = a;
    n->b = b;
    return n;
}
}

%token <i> INT "integer" BOOL "true or false"
%token <f> FLOAT "number"
%token <s> IDENT "name" STRING "string"
%token NEWLINE "end of line"
%token KW_MODEL "model" KW_WEIGHTS "weights" KW_CONST "const" KW_INPUT "input" KW_OUTPUT "output"
%token KW_FN "fn" KW_RETURN "return" KW_FOR "for" KW_IN "in" KW_WHERE "where"
%token POW "**" LE "<=" GE ">=" EQ "==" NE "!=" ARROW "->" DOTDOT ".."

%nonassoc '<' '>' LE GE EQ NE
%left '+' '-'
%left '*' '/' '%' '@'
%precedence UMINUS
%right POW

%type <ast> stmts stmt block const_items const_item type dims bounds bound params param
%type <ast> targets expr postfix primary args arg items item index_items index_item expr_opt exprs
%type <s> name

%%

file
    : stmts                            { ps->root = mk(ps, AST_BLOCK, @$); ps->root->list = $1; }
    ;

stmts
    : %empty                           { $$ = NULL; }
    | stmts sep                        { $$ = $1; }
    | stmts stmt sep                   { $$ = ast_append($1, $2); }
    | stmts error sep                  { $$ = $1; yyerrok; }
    ;

sep : NEWLINE | ';' ;

block
    : '{' stmts '}'                    { $$ = mk(ps, AST_BLOCK, @1); $$->list = $2; }
    ;

stmt
    : KW_MODEL IDENT                   { $$ = mk(ps, AST_MODEL, @2); $$->s = $2; }
    | KW_WEIGHTS STRING                { $$ = mk(ps, AST_WEIGHTS, @2); $$->s = $2; }
    | KW_CONST const_items             { $$ = $2; }
    | KW_INPUT IDENT ':' type          { $$ = mk(ps, AST_INPUT, @2); $$->s = $2; $$->a = $4; }
    | KW_INPUT IDENT ':' type KW_WHERE bounds
                                       { $$ = mk(ps, AST_INPUT, @2); $$->s = $2; $$->a = $4; $$->list = $6; }
    | KW_OUTPUT IDENT ':' type         { $$ = mk(ps, AST_OUTPUT, @2); $$->s = $2; $$->a = $4; }
    | KW_FN IDENT '(' params ')' block { $$ = mk(ps, AST_FN, @2); $$->s = $2; $$->list = $4; $$->b = $6; }
    | KW_FN IDENT '(' params ')' ARROW type block
                                       { $$ = mk(ps, AST_FN, @2); $$->s = $2; $$->list = $4; $$->a = $7; $$->b = $8; }
    | KW_FOR IDENT KW_IN expr DOTDOT expr block
                                       { $$ = mk(ps, AST_FOR, @1); $$->s = $2; $$->a = $4; $$->b = $6; $$->c = $7; }
    | KW_RETURN exprs                  { $$ = mk(ps, AST_RETURN, @1); $$->a = $2; }
    | targets '=' exprs                { $$ = mk(ps, AST_ASSIGN, @1); $$->list = $1; $$->a = $3; }
    | IDENT ':' type '=' exprs         { $$ = mk(ps, AST_ASSIGN, @1); $$->list = mk(ps, AST_NAME, @1);
                                         $$->list->s = $1; $$->a = $5; $$->b = $3; }
    ;

const_items
    : const_item                       { $$ = $1; }
    | const_items ',' const_item       { $$ = ast_append($1, $3); }
    ;

const_item
    : IDENT '=' expr                   { $$ = mk(ps, AST_CONST, @1); $$->s = $1; $$->a = $3; }
    ;

type
    : IDENT '[' ']'                    { $$ = mk(ps, AST_TYPE, @1); $$->s = $1; }
    | IDENT '[' dims ']'               { $$ = mk(ps, AST_TYPE, @1); $$->s = $1; $$->list = $3; }
    ;

dims
    : expr                             { $$ = $1; }
    | dims ',' expr                    { $$ = ast_append($1, $3); }
    ;

bounds
    : bound                            { $$ = $1; }
    | bounds ',' bound                 { $$ = ast_append($1, $3); }
    ;

bound
    : IDENT LE expr                    { $$ = mk(ps, AST_BOUND, @1); $$->s = $1; $$->a = $3; }
    ;

params
    : %empty                           { $$ = NULL; }
    | param                            { $$ = $1; }
    | params ',' param                 { $$ = ast_append($1, $3); }
    ;

param
    : IDENT                            { $$ = mk(ps, AST_PARAM, @1); $$->s = $1; }
    | IDENT ':' type                   { $$ = mk(ps, AST_PARAM, @1); $$->s = $1; $$->a = $3; }
    ;

targets
    : IDENT                            { $$ = mk(ps, AST_NAME, @1); $$->s = $1; }
    | targets ',' IDENT                { Ast *n = mk(ps, AST_NAME, @3); n->s = $3; $$ = ast_append($1, n); }
    ;

/* `return a, b` and `x = a, b` make a tuple */
exprs
    : expr                             { $$ = $1; }
    | expr ',' items                   { $$ = mk(ps, AST_TUPLE, @1); $1->next = $3; $$->list = $1; }
    ;

expr
    : postfix                          { $$ = $1; }
    | '-' expr %prec UMINUS            { $$ = mk(ps, AST_NEG, @1); $$->a = $2; }
    | expr POW expr                    { $$ = binary(ps, POW, $1, $3, @2); }
    | expr '*' expr                    { $$ = binary(ps, '*', $1, $3, @2); }
    | expr '/' expr                    { $$ = binary(ps, '/', $1, $3, @2); }
    | expr '%' expr                    { $$ = binary(ps, '%', $1, $3, @2); }
    | expr '@' expr                    { $$ = binary(ps, '@', $1, $3, @2); }
    | expr '+' expr                    { $$ = binary(ps, '+', $1, $3, @2); }
    | expr '-' expr                    { $$ = binary(ps, '-', $1, $3, @2); }
    | expr '<' expr                    { $$ = binary(ps, '<', $1, $3, @2); }
    | expr '>' expr                    { $$ = binary(ps, '>', $1, $3, @2); }
    | expr LE expr                     { $$ = binary(ps, LE, $1, $3, @2); }
    | expr GE expr                     { $$ = binary(ps, GE, $1, $3, @2); }
    | expr EQ expr                     { $$ = binary(ps, EQ, $1, $3, @2); }
    | expr NE expr                     { $$ = binary(ps, NE, $1, $3, @2); }
    ;

postfix
    : primary                          { $$ = $1; }
    | postfix '(' args ')'             { $$ = mk(ps, AST_CALL, @2); $$->a = $1; $$->list = $3; }
    | postfix '[' index_items ']'      { $$ = mk(ps, AST_INDEX, @2); $$->a = $1; $$->list = $3; }
    | postfix '.' name                 { $$ = mk(ps, AST_ATTR, @3); $$->a = $1; $$->s = $3; }
    ;

primary
    : INT                              { $$ = mk(ps, AST_INT, @1); $$->i = $1; }
    | FLOAT                            { $$ = mk(ps, AST_FLOAT, @1); $$->f = $1; }
    | BOOL                             { $$ = mk(ps, AST_BOOL, @1); $$->i = $1; }
    | STRING                           { $$ = mk(ps, AST_STRING, @1); $$->s = $1; }
    | IDENT                            { $$ = mk(ps, AST_NAME, @1); $$->s = $1; }
    | KW_WHERE                         { $$ = mk(ps, AST_NAME, @1); $$->s = "where"; } /* the builtin */
    | '(' expr ')'                     { $$ = $2; }
    | '(' expr ',' ')'                 { $$ = mk(ps, AST_TUPLE, @1); $$->list = $2; }
    | '(' expr ',' items ')'           { $$ = mk(ps, AST_TUPLE, @1); $2->next = $4; $$->list = $2; }
    | '[' ']'                          { $$ = mk(ps, AST_LIST, @1); }
    | '[' items ']'                    { $$ = mk(ps, AST_LIST, @1); $$->list = $2; }
    ;

/* after '.', keywords are names too: w.model.layers, p.attention.output */
name
    : IDENT                            { $$ = $1; }
    | KW_MODEL                         { $$ = "model"; }
    | KW_WEIGHTS                       { $$ = "weights"; }
    | KW_CONST                         { $$ = "const"; }
    | KW_INPUT                         { $$ = "input"; }
    | KW_OUTPUT                        { $$ = "output"; }
    | KW_FN                            { $$ = "fn"; }
    | KW_RETURN                        { $$ = "return"; }
    | KW_FOR                           { $$ = "for"; }
    | KW_IN                            { $$ = "in"; }
    | KW_WHERE                         { $$ = "where"; }
    ;

items
    : item                             { $$ = $1; }
    | items ',' item                   { $$ = ast_append($1, $3); }
    ;

item : expr                            { $$ = $1; } ;

args
    : %empty                           { $$ = NULL; }
    | arg                              { $$ = $1; }
    | args ',' arg                     { $$ = ast_append($1, $3); }
    ;

arg
    : expr                             { $$ = $1; }
    | IDENT '=' expr                   { $$ = mk(ps, AST_KWARG, @1); $$->s = $1; $$->a = $3; }
    ;

index_items
    : index_item                       { $$ = $1; }
    | index_items ',' index_item       { $$ = ast_append($1, $3); }
    ;

index_item
    : expr                             { $$ = $1; }
    | expr_opt ':' expr_opt            { $$ = mk(ps, AST_RANGE, @2); $$->a = $1; $$->b = $3; }
    ;

expr_opt
    : %empty                           { $$ = NULL; }
    | expr                             { $$ = $1; }
    ;

%%

void yyerror(YYLTYPE *lloc, void *scanner, ParseState *ps, const char *msg)
{
    (void)scanner;
    /* bison says "syntax error, unexpected X, expecting Y"; keep it, it names both sides. */
    /* bison's stack is full (YYMAXDEPTH, 10000 levels): say what that means in a model file */
    if (!strcmp(msg, "memory exhausted"))
        msg = "expression nested too deeply (more than 10000 levels of brackets, calls or operators)";
    diag_error(ps->diag, LOC(*lloc), "%s", msg);
}
