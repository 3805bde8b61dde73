# SPDX-License-Identifier: MIT
# bash completion for taskq and taskq-bridge                -*- shell-script -*-
#
# make install puts this file in share/bash-completion/completions/ as
# taskq, with taskq-bridge a link to it, where the bash-completion package
# loads it on first use. Without that package: source it from ~/.bashrc.
#
# Completes subcommands, options and their fixed values, file names for
# file options, and queue names (/dev/shm/taskq.NAME). Subcommands and
# options are read from the program's own --help when completing, so they
# always match the installed program.

# The help text of PROG ARGS... (empty when it cannot be run).
_taskq_help()
{
	"$@" --help 2>/dev/null
}

# Options (long, and short such as -n) mentioned in the help text $1.
_taskq_opts()
{
	grep -oE -- '(^|[][ (,|])--?[a-zA-Z][a-zA-Z0-9-]*' <<<"$1" | sed -E 's/^[^-]+//' | sort -u
}

# The argument an option takes, per the help text $1: "OPT ARG" lines for
# every option shown with an argument (--capacity N, --kind int|string|json).
_taskq_opt_args()
{
	grep -oE -- '(^|[][ ])--?[a-zA-Z][a-zA-Z0-9-]*[ =]([A-Z][A-Z_:.,]*|[a-z0-9]+(\|[a-z0-9]+)+)' <<<"$1" |
		sed -E 's/^[][ ]//; s/=/ /'
}

# Queue names: the regular files /dev/shm/taskq.NAME whose NAME is a valid
# queue name.
_taskq_queues()
{
	local f n
	for f in /dev/shm/taskq.*; do
		[[ -f $f ]] || continue
		n=${f#/dev/shm/taskq.}
		[[ $n =~ ^[A-Za-z0-9_-][A-Za-z0-9_.-]*$ ]] && printf '%s\n' "$n"
	done
}

_taskq()
{
	local cur=${COMP_WORDS[COMP_CWORD]} prev="" prog=${COMP_WORDS[0]}
	local -a cmd
	local help argopts first i w sub="" npos=0 arg
	COMPREPLY=()
	((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
	# --opt=VALUE: bash splits at '=' (COMP_WORDBREAKS).
	if [[ $cur == = ]]; then
		cur=""
	elif [[ $prev == = ]] && ((COMP_CWORD > 1)); then
		prev=${COMP_WORDS[COMP_CWORD - 2]}
	fi
	# The program as typed (./build/taskq too), else the one on PATH.
	type -P "$prog" >/dev/null 2>&1 || prog=${prog##*/}

	if [[ ${prog##*/} == taskq-bridge ]]; then
		cmd=("$prog")
		first=1
	elif ((COMP_CWORD == 1)); then
		help=$(_taskq_help "$prog")
		COMPREPLY=($(compgen -W "$(sed -n '/Commands:$/,/^$/s/^  \([a-z][a-z-]*\) .*/\1/p' <<<"$help") --help --version" -- "$cur"))
		return 0
	elif [[ ${COMP_WORDS[1]} == bridge ]]; then
		cmd=("$prog" bridge)
		first=2
	else
		cmd=("$prog" "${COMP_WORDS[1]}")
		sub=${COMP_WORDS[1]}
		first=2
	fi
	help=$(_taskq_help "${cmd[@]}")
	[[ -n $help ]] || return 0

	# The bridge's first argument: its mode (out, in, stats, stop, top).
	if [[ ${#cmd[@]} -eq 1 || ${cmd[1]} == bridge ]]; then
		if ((COMP_CWORD == first)); then
			COMPREPLY=($(compgen -W "$(sed -nE 's/^(usage:)? +(taskq-bridge|taskq bridge) +([a-z]+) .*/\3/p' <<<"$help") --help --version" -- "$cur"))
			return 0
		fi
		sub=${COMP_WORDS[first]}
		first=$((first + 1))
	fi

	argopts=$(_taskq_opt_args "$help")
	# After an option that takes an argument: its fixed values, or file
	# names, or nothing to offer (a number, a duration, a URL).
	if [[ $prev == -* ]]; then
		arg=$(awk -v o="$prev" '$1 == o { print $2; exit }' <<<"$argopts")
		if [[ -n $arg ]]; then
			case $arg in
			*'|'*) COMPREPLY=($(compgen -W "${arg//|/ }" -- "$cur")) ;;
			FILE | F)
				compopt -o filenames 2>/dev/null
				COMPREPLY=($(compgen -f -- "$cur"))
				;;
			esac
			return 0
		fi
	fi

	# Count the arguments before this word that are not options (nor an
	# option's argument); after `work NAME --`, complete a command.
	for ((i = first; i < COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		if [[ $w == -- && $sub == work ]]; then
			if ((i == COMP_CWORD - 1)); then
				COMPREPLY=($(compgen -c -- "$cur" | sort -u))
			else
				compopt -o default 2>/dev/null
			fi
			return 0
		elif [[ $w == = ]]; then
			continue
		elif [[ $w == -* ]]; then
			[[ ${COMP_WORDS[i + 1]} == = ]] && ((i += 2)) && continue
			awk -v o="$w" '$1 == o { f = 1 } END { exit !f }' <<<"$argopts" && ((i++))
		else
			((npos++))
		fi
	done

	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$(_taskq_opts "$help")" -- "$cur"))
		return 0
	fi
	case $sub in
	ls | clean) ;;
	serve) COMPREPLY=($(compgen -W "$(_taskq_queues)" -- "$cur")) ;;
	dead)
		case $npos in
		0) COMPREPLY=($(compgen -W "$(_taskq_queues)" -- "$cur")) ;;
		1) COMPREPLY=($(compgen -W "list kick purge" -- "$cur")) ;;
		esac
		;;
	*) ((npos == 0)) && COMPREPLY=($(compgen -W "$(_taskq_queues)" -- "$cur")) ;;
	esac
	return 0
}
complete -F _taskq taskq taskq-bridge
