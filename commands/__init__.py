"""The `tierserve` command, assembled in one place from each package's commands (commands.main), so no runtime
package imports another's command line."""
