/* cli.h: subcommands of the pathens command line, each returning the process exit code. */
#pragma once

int cmd_eval(int argc, char **argv);
int cmd_prune(int argc, char **argv);
